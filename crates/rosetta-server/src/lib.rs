//! The Rosetta control-plane server: configuration, telemetry and the wiring of concrete
//! adapters into the ports. The only crate that names concrete adapter types.

pub mod cli;
pub mod config;
pub mod secrets;
pub mod startup;
pub mod supervisor;
pub mod telemetry;
