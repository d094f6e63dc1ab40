//! The kernel's clock discipline on a running host, from `adjtimex(2)`:
//! synchronised, and estimated error within a limit.

use serde::Deserialize;

use super::{Ctx, Outcome, Probe};
use crate::expect::Num;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockStateProbe {
    /// Largest acceptable estimated error, in milliseconds.
    max_error_ms: Num,
}

impl Probe for ClockStateProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let Some(live) = ctx.host.live_host() else {
            return Outcome::not_applicable(
                "the kernel clock state exists only on a running host; the time daemon's configuration is checked instead",
            );
        };
        let max = match self.max_error_ms.resolve(ctx.params) {
            Ok(m) => m,
            Err(e) => return Outcome::error(e),
        };
        let state = match live.clock() {
            Ok(s) => s,
            Err(e) => return Outcome::error(format!("adjtimex(2): {e}")),
        };
        let est_ms = state.est_error_us as f64 / 1000.0;
        let observed = format!(
            "{}, estimated error {est_ms:.3} ms, maximum error {:.3} ms",
            if state.synchronized {
                "synchronised"
            } else {
                "unsynchronised"
            },
            state.max_error_us as f64 / 1000.0
        );
        let expected = format!("synchronised, estimated error at most {max} ms");
        let ok = state.synchronized && est_ms <= max as f64;
        let message = if !state.synchronized {
            "the kernel reports the clock unsynchronised (STA_UNSYNC set or TIME_ERROR): no time daemon is disciplining it".to_string()
        } else if !ok {
            format!("estimated clock error {est_ms:.3} ms exceeds {max} ms")
        } else {
            format!("clock synchronised, estimated error {est_ms:.3} ms")
        };
        Outcome::verdict(ok, message)
            .expected(expected)
            .observed(observed)
            .sources(vec![state.source()])
    }

    fn param_refs(&self) -> Vec<&str> {
        self.max_error_ms.param_ref().into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{root, run};
    use crate::host::HostView;
    use crate::result::Status;

    #[test]
    fn live_reading_matches_the_kernel_and_root_mode_is_not_applicable() {
        let o = run(
            &HostView::live(),
            r#"{ kind = "clock_state", max_error_ms = 100000 }"#,
        );
        let state = crate::host::LiveHost::new().clock().unwrap();
        assert_eq!(o.status == Status::Pass, state.synchronized, "{o:?}");
        assert_eq!(o.sources[0].path, "adjtimex(2)");
        let (_d, view) = root(&[]);
        assert_eq!(
            run(&view, r#"{ kind = "clock_state", max_error_ms = 100 }"#).status,
            Status::NotApplicable
        );
    }
}
