//! `SchemaName`: the only way to name a tenant schema. Parsing is the check;
//! once a value exists it is safe to put into SQL, always quoted.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaNameError {
    #[error("schema name is empty")]
    Empty,
    #[error(
        "schema name {0:?} is not valid: use 3 to 63 characters, lowercase letters, digits and \
         underscores, starting with a letter"
    )]
    Invalid(String),
    #[error("schema name {0:?} is reserved by PostgreSQL")]
    Reserved(String),
}

/// The grammar `parse` accepts, for documents that describe it (OpenAPI).
pub const PATTERN: &str = "^[a-z][a-z0-9_]{2,62}$";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SchemaName(String);

impl SchemaName {
    /// Accepts `^[a-z][a-z0-9_]{2,62}$`, never `public`, `pg_*` or
    /// `information_schema`.
    pub fn parse(raw: &str) -> Result<Self, SchemaNameError> {
        if raw.is_empty() {
            return Err(SchemaNameError::Empty);
        }
        let bytes = raw.as_bytes();
        let well_formed = (3..=63).contains(&bytes.len())
            && bytes[0].is_ascii_lowercase()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
        if !well_formed {
            return Err(SchemaNameError::Invalid(raw.to_string()));
        }
        if raw == "public" || raw.starts_with("pg_") || raw == "information_schema" {
            return Err(SchemaNameError::Reserved(raw.to_string()));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a quoted SQL identifier. The grammar above admits no
    /// quote, so quoting is enough; it also keeps names like `user` legal.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl fmt::Display for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in [
            "acme",
            "acme_corp",
            "a12",
            "user",
            &format!("a{}", "b".repeat(62)),
        ] {
            assert_eq!(SchemaName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_everything_else() {
        let too_long = format!("a{}", "b".repeat(63));
        for bad in [
            "",
            "ab",
            "Acme",
            "acme\"; DROP SCHEMA public; --",
            "acme;",
            "ac me",
            "1acme",
            "_acme",
            "acme-corp",
            "public",
            "pg_catalog",
            "pg_toast",
            "information_schema",
            "ünï",
            too_long.as_str(),
        ] {
            assert!(SchemaName::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn quoting_is_an_identifier() {
        assert_eq!(SchemaName::parse("user").unwrap().quoted(), "\"user\"");
    }
}
