//! `GET /v1/conformity`: the fleet's conformity with the SoA as the
//! collector computes it, per control, for one control or for one host.
//! The answer is kept as JSON (read loosely by `render::status`), so that
//! a newer collector's extra fields do not break an older CLI.

use serde_json::Value;

use super::{Api, ClientError, path_of, placeholder};

/// Which answer to ask for, and how to narrow it.
#[derive(Debug, Clone, Default)]
pub struct ConformityQuery {
    /// One control: every host in its scope.
    pub control: Option<String>,
    /// One host (agent id or host name): every control (with `control`:
    /// only that one).
    pub host: Option<String>,
    /// Only hosts whose labels match this selector.
    pub labels: Option<String>,
    /// Only cells in this state.
    pub state: Option<String>,
}

/// Asks the collector; anything but 200 is refused, named with the query.
pub async fn conformity(api: &Api, q: &ConformityQuery) -> Result<Value, ClientError> {
    let path = conformity_path(q);
    let (status, body) = api.get(&path).await?;
    let value: Value = serde_json::from_slice(&body).map_err(|source| ClientError::NotJson {
        server: api.server().to_string(),
        path: path.clone(),
        status,
        source,
    })?;
    if status != 200 {
        return Err(ClientError::Refused {
            server: api.server().to_string(),
            code: value["error"].as_str().unwrap_or("error").to_string(),
            message: value["message"].as_str().unwrap_or("").to_string(),
            route: path,
            status,
        });
    }
    Ok(value)
}

/// The path: segments and query values are the user's, so the URL type
/// encodes them.
fn conformity_path(q: &ConformityQuery) -> String {
    let mut url = placeholder("/v1/conformity");
    if let Ok(mut segments) = url.path_segments_mut() {
        match (&q.control, &q.host) {
            (Some(c), None) => {
                segments.extend(["controls", c]);
            }
            (_, Some(h)) => {
                segments.extend(["hosts", h]);
            }
            (None, None) => {}
        }
    }
    let mut query = Vec::new();
    if let (Some(c), Some(_)) = (&q.control, &q.host) {
        query.push(("control", c.as_str()));
    }
    if let Some(l) = &q.labels {
        query.push(("labels", l.as_str()));
    }
    if let Some(s) = &q.state {
        query.push(("state", s.as_str()));
    }
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    path_of(&url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_values_are_encoded() {
        let q = |control: Option<&str>, host: Option<&str>, labels: Option<&str>| ConformityQuery {
            control: control.map(str::to_string),
            host: host.map(str::to_string),
            labels: labels.map(str::to_string),
            state: None,
        };
        assert_eq!(conformity_path(&q(None, None, None)), "/v1/conformity");
        assert_eq!(
            conformity_path(&q(Some("8.5"), None, Some("env=prod;role=db|web"))),
            "/v1/conformity/controls/8.5?labels=env%3Dprod%3Brole%3Ddb%7Cweb"
        );
        assert_eq!(
            conformity_path(&q(Some("8.5"), Some("web 1/a"), None)),
            "/v1/conformity/hosts/web%201%2Fa?control=8.5"
        );
    }
}
