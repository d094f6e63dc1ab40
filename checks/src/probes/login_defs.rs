//! A setting of /etc/login.defs (shadow-utils: the last occurrence wins).

use serde::Deserialize;

use super::{Ctx, Outcome, Probe, host_try};
use crate::expect::Expect;
use crate::host::HostView;
use crate::parse::keyvalue;

const PATH: &str = "/etc/login.defs";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginDefsProbe {
    key: String,
    expect: Expect,
    #[serde(default)]
    default: Option<String>,
}

impl Probe for LoginDefsProbe {
    fn run(&self, ctx: &Ctx<'_>) -> Outcome {
        let Some(file) = host_try!(ctx.read(PATH)) else {
            return Outcome::fail(format!("{PATH} is absent, so {} is not set", self.key))
                .expected(self.expect.describe(ctx.params))
                .observed("file absent")
                .sources(vec![HostView::absent_source(PATH)]);
        };
        let kvs = keyvalue::parse_space_separated(&file.text());
        match (keyvalue::last(&kvs, &self.key), &self.default) {
            (Some(kv), _) => ctx.judge(
                &format!("{} ({PATH}:{})", self.key, kv.line),
                &self.expect,
                &kv.value,
                vec![file.source_at(kv.line)],
            ),
            (None, Some(d)) => ctx.judge(
                &format!("{} (not set; default)", self.key),
                &self.expect,
                d,
                vec![file.source()],
            ),
            (None, None) => Outcome::fail(format!("{} is not set in {PATH}", self.key))
                .expected(self.expect.describe(ctx.params))
                .observed("not set")
                .sources(vec![file.source()]),
        }
    }

    fn param_refs(&self) -> Vec<&str> {
        self.expect.param_refs()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::run_files;
    use crate::result::Status;

    const P: &str = r#"{ kind = "login_defs", key = "PASS_MAX_DAYS", expect = { at_most = 365 } }"#;

    #[test]
    fn pass_fail_missing() {
        let o = run_files(
            &[("/etc/login.defs", "PASS_MAX_DAYS 99999\nPASS_MAX_DAYS 90\n")],
            P,
        );
        assert_eq!(o.status, Status::Pass);
        assert_eq!(o.sources[0].line, Some(2));
        let o = run_files(&[("/etc/login.defs", "PASS_MAX_DAYS\t99999\n")], P);
        assert_eq!(o.status, Status::Fail);
        assert_eq!(o.observed.as_deref(), Some("99999"));
        let o = run_files(&[("/etc/login.defs", "# nothing\n")], P);
        assert_eq!(o.status, Status::Fail);
        let o = run_files(&[], P);
        assert_eq!(o.status, Status::Fail);
        assert_eq!(o.sources[0].kind, crate::result::SourceKind::Absent);
    }

    #[test]
    fn umask_bits() {
        let p = r#"{ kind = "login_defs", key = "UMASK", expect = { bits_set = "027" } }"#;
        assert_eq!(
            run_files(&[("/etc/login.defs", "UMASK 027\n")], p).status,
            Status::Pass
        );
        assert_eq!(
            run_files(&[("/etc/login.defs", "UMASK 022\n")], p).status,
            Status::Fail
        );
    }
}
