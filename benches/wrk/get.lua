-- A plain GET of the URL given on the command line (the consent page), with the summary.
dofile("benches/wrk/report.lua")
