//! `annexa status`: the fleet's conformity with the SoA, as the collector
//! computes it, as a table or the collector's JSON.

use crate::client::status::{ConformityQuery, conformity};
use crate::client::{Api, ApiOptions};
use crate::commands::{Exit, print_result, runtime};
use crate::render::status::{any_nonconformant, render};

/// The collector, the question and the format.
#[derive(Debug, Clone, Default)]
pub struct StatusOptions {
    /// The collector and how to reach it.
    pub api: ApiOptions,
    /// Which answer, narrowed how.
    pub query: ConformityQuery,
    /// Print the collector's JSON instead of a table.
    pub json: bool,
}

/// Prints the answer; [`Exit::Failure`] when it shows anything
/// nonconformant.
pub fn status(opts: StatusOptions) -> anyhow::Result<Exit> {
    let api = Api::connect(&opts.api)?;
    let value = runtime()?.block_on(conformity(&api, &opts.query))?;
    print_result(opts.json, &value, |out| render(out, &value))?;
    Ok(Exit::failure_if(any_nonconformant(&value)))
}
