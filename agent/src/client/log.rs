//! `GET /v1/log/export`: the whole evidence log as a bundle (JSON Lines),
//! for `annexa verify log` to check against the collector's key alone.

use super::{Api, ClientError};

/// The route, which also names the bundle in what `annexa verify log`
/// prints.
pub const EXPORT: &str = "/v1/log/export";

/// Streams the bundle into `dest` (it can be gigabytes: no overall time
/// limit); anything but 200 is refused.
pub async fn export(api: &Api, dest: &mut (dyn std::io::Write + Send)) -> Result<(), ClientError> {
    api.download(EXPORT, dest).await
}
