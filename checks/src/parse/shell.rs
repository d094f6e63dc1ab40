//! Variable assignments in shell profile files (`/etc/profile`,
//! `/etc/profile.d/*.sh`, `/etc/bash.bashrc`), as far as they can be read
//! without running a shell: `VAR=value`, `export VAR=value`,
//! `readonly VAR=value`, `declare -r`/`typeset -r`, and `readonly VAR` /
//! `export VAR` on their own, also several per line separated by `;`.

/// What a statement did to the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellAction {
    /// Assigned a value (and whether the same statement made it read-only
    /// or exported it).
    Assign {
        /// The value, quotes removed.
        value: String,
        /// `readonly`, `declare -r` or `typeset -r`.
        readonly: bool,
        /// `export`.
        exported: bool,
    },
    /// `readonly VAR` without a value.
    MarkReadonly,
    /// `export VAR` without a value.
    MarkExported,
}

/// One statement about the variable and its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellStatement {
    /// What it did.
    pub action: ShellAction,
    /// 1-based line.
    pub line: u32,
    /// Whether it sits inside an `if`/`case` block (its effect depends on a
    /// condition the scan cannot evaluate).
    pub conditional: bool,
}

use super::keyvalue::unquote;

fn split_statements(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (c, quote) {
            ('\'' | '"', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            (';' | '&' | '|', None) => {
                out.push(&line[start..i]);
                start = i + 1;
            }
            ('#', None) if line[..i].ends_with(char::is_whitespace) || i == 0 => {
                out.push(&line[start..i]);
                return out;
            }
            _ => {}
        }
    }
    out.push(&line[start..]);
    out
}

/// All statements in `text` that concern `var`.
pub fn statements_for(text: &str, var: &str) -> Vec<ShellStatement> {
    let mut out = Vec::new();
    let mut depth: i32 = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = i as u32 + 1;
        for stmt in split_statements(raw) {
            let mut words: Vec<&str> = stmt.split_whitespace().collect();
            if words.is_empty() {
                continue;
            }
            match words[0] {
                "if" | "case" => {
                    depth += 1;
                    words.remove(0);
                }
                "fi" | "esac" => {
                    depth = (depth - 1).max(0);
                    continue;
                }
                "then" | "else" | "do" => {
                    words.remove(0);
                }
                _ => {}
            }
            let conditional = depth > 0;
            let mut readonly = false;
            let mut exported = false;
            let mut rest: &[&str] = &words;
            while let Some((first, tail)) = rest.split_first() {
                match *first {
                    "readonly" => readonly = true,
                    "export" => exported = true,
                    "declare" | "typeset" | "local" => {}
                    flag if flag.starts_with('-') => {
                        if flag.contains('r') {
                            readonly = true;
                        }
                        if flag.contains('x') {
                            exported = true;
                        }
                    }
                    _ => break,
                }
                rest = tail;
            }
            for word in rest {
                let (name, value) = match word.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (*word, None),
                };
                if name != var {
                    continue;
                }
                let action = match value {
                    Some(v) => ShellAction::Assign {
                        value: unquote(v),
                        readonly,
                        exported,
                    },
                    None if readonly => ShellAction::MarkReadonly,
                    None if exported => ShellAction::MarkExported,
                    None => continue,
                };
                out.push(ShellStatement {
                    action,
                    line,
                    conditional,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_tmout_idioms() {
        let s = statements_for("TMOUT=900\nreadonly TMOUT\nexport TMOUT\n", "TMOUT");
        assert_eq!(s.len(), 3);
        assert!(
            matches!(&s[0].action, ShellAction::Assign { value, readonly: false, .. } if value == "900")
        );
        assert_eq!(s[1].action, ShellAction::MarkReadonly);
        assert_eq!(s[2].action, ShellAction::MarkExported);

        let s = statements_for("TMOUT=600; readonly TMOUT; export TMOUT # idle\n", "TMOUT");
        assert_eq!(s.len(), 3);
        let s = statements_for("declare -rx TMOUT=\"300\"\n", "TMOUT");
        assert_eq!(
            s[0].action,
            ShellAction::Assign {
                value: "300".into(),
                readonly: true,
                exported: true
            }
        );
        let s = statements_for("readonly TMOUT=120 OTHER=1\n", "TMOUT");
        assert!(matches!(
            &s[0].action,
            ShellAction::Assign { readonly: true, .. }
        ));
    }

    #[test]
    fn comments_and_other_variables_are_ignored_and_conditions_noticed() {
        assert!(statements_for("# TMOUT=900\nMYTMOUT=1\necho TMOUT\n", "TMOUT").is_empty());
        let s = statements_for(
            "if [ \"$UID\" -ne 0 ]; then\n  TMOUT=900\nfi\nTMOUT=60\n",
            "TMOUT",
        );
        assert_eq!(s.len(), 2);
        assert!(s[0].conditional);
        assert!(!s[1].conditional);
    }
}
