//! The identifiers that cross crate boundaries: [`CheckId`] and
//! [`ControlId`] (and, through [`string_id!`](crate::string_id),
//! `annexa_evidence::AgentId`).
//!
//! They exist so that a check id cannot be passed where a control id is
//! meant; they do not validate. Each is a `String` on the wire
//! (`#[serde(transparent)]`), so signed evidence, reports and stored rows
//! read and write the same bytes as before, and anything accepted as a
//! string is accepted as an id: the rules for what a well-formed id is live
//! where ids are made (pack and SoA linting, enrollment), not in these
//! types. They order, hash and compare exactly as their strings do, and
//! borrow as `str`, so maps keyed by them are looked up with a `&str`.

/// Defines a string newtype for an identifier: transparent on the wire,
/// ordered and hashed as its string, `Borrow<str>` for map lookups.
///
/// Exported for `annexa-evidence`, which defines `AgentId` with it, so
/// that the three ids behave alike; not part of this crate's interface
/// otherwise. The invoking crate needs `serde` among its dependencies.
#[doc(hidden)]
#[macro_export]
macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug,
            Clone,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as given (no validation: see the type's documentation).
            pub fn new(id: impl Into<String>) -> $name {
                $name(id.into())
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as an owned string (for a store row or a message).
            pub fn into_string(self) -> String {
                self.0
            }
        }

        // `pad`, not `write_str`: width and alignment (`{:<9}` in tables)
        // must lay an id out exactly as they laid out its string.
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.pad(&self.0)
            }
        }

        impl ::std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl ::std::convert::AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::std::convert::Infallible;

            fn from_str(s: &str) -> ::std::result::Result<$name, Self::Err> {
                Ok($name::new(s))
            }
        }

        impl ::std::convert::From<String> for $name {
            fn from(id: String) -> $name {
                $name(id)
            }
        }

        impl ::std::convert::From<&str> for $name {
            fn from(id: &str) -> $name {
                $name(id.to_owned())
            }
        }

        impl ::std::convert::From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl ::std::cmp::PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl ::std::cmp::PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl ::std::cmp::PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl ::std::cmp::PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl ::std::cmp::PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl ::std::cmp::PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

string_id! {
    /// The id of a check (`ssh.root-login`), unique across the loaded packs.
    ///
    /// Made by a pack's `[[check]]` table (checked there: see
    /// [`crate::pack::parse_pack`]) and carried by every result, baseline,
    /// SoA entry and report that names the check. A `String` on the wire.
    CheckId
}

string_id! {
    /// The id of an Annex A control in one edition: `A.11.5.5` (2005,
    /// 2013) or `8.5` (2022).
    ///
    /// Canonical where the catalog made it ([`crate::catalog::Catalog::normalize`],
    /// a pack's derived controls, a linted SoA); a control id read from
    /// evidence or a report is taken as written. A `String` on the wire.
    ControlId
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;

    #[test]
    fn transparent_on_the_wire() {
        let id = CheckId::new("ssh.root-login");
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""ssh.root-login""#);
        let back: CheckId = serde_json::from_str(r#""ssh.root-login""#).unwrap();
        assert_eq!(back, id);
        // No validation: whatever a string field accepted, the id accepts.
        let odd: ControlId = serde_json::from_str(r#""""#).unwrap();
        assert_eq!(odd, "");
    }

    #[test]
    fn orders_as_its_string() {
        let mut ids: Vec<ControlId> = ["A.9.2", "A.10.1", "8.5", "a.1"]
            .into_iter()
            .map(ControlId::from)
            .collect();
        let mut strings: Vec<String> = ids.iter().map(ToString::to_string).collect();
        strings.sort();
        ids.sort();
        assert_eq!(ids, strings);
    }

    #[test]
    fn displays_as_its_string_with_width_and_alignment() {
        let id = ControlId::new("8.5");
        assert_eq!(format!("[{id:<6}|{id:>6}|{id:.1}]"), "[8.5   |   8.5|8]");
    }

    #[test]
    fn maps_are_looked_up_by_str() {
        let hashed: HashMap<CheckId, u8> = [(CheckId::from("a"), 1)].into();
        let ordered: BTreeMap<ControlId, u8> = [(ControlId::from("8.5"), 2)].into();
        assert_eq!(hashed.get("a"), Some(&1));
        assert_eq!(ordered.get("8.5"), Some(&2));
    }
}
