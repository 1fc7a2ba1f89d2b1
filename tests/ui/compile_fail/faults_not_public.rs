// Guarantee (issue 10, item 2): a normal build has no fault switch in its API, whatever
// features any crate in the build turns on. The switches exist only with
// `RUSTFLAGS="--cfg consent_gate_faults"`, a flag no Cargo.toml can set; a feature would
// be unified into every build of the workspace, release binaries included.
// Expected: E0432 (no `Faults`), E0599 (no `ConfigBuilder::faults`, no
// `VerifiedCallback::reinsert`).
use consent_gate::{ConfigBuilder, Faults, VerifiedCallback};

fn switch_on(builder: ConfigBuilder) -> ConfigBuilder {
    builder.faults(Faults::ALL[0].1)
}

fn store_back(verified: &VerifiedCallback) -> bool {
    verified.reinsert().is_some()
}

fn main() {
    let _ = (switch_on, store_back);
}
