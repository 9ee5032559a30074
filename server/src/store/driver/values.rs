//! Bind and read types that encode for both databases, so that a script
//! binds the same Rust value whatever the driver.
//!
//! - [`Ts`]: a timestamp. `timestamptz` on Postgres; on SQLite fixed-width
//!   UTC text (`YYYY-MM-DDTHH:MM:SS.ffffffZ`), so that text order is time
//!   order and values round-trip exactly. Always bind timestamps as `Ts`.
//! - [`Texts`] and [`Uuids`]: a set, for `column <Driver::in_texts(n)>`.
//!   An array on Postgres, one JSON array on SQLite (UUIDs as hex, which
//!   `unhex` turns back into the 16-byte blobs SQLite stores).
//! - [`Day`]: a calendar day, `date` on Postgres and `YYYY-MM-DD` on SQLite.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};
use uuid::Uuid;

/// A timestamp to bind (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ts(pub DateTime<Utc>);

/// An optional timestamp to bind.
pub fn opt_ts(at: Option<DateTime<Utc>>) -> Option<Ts> {
    at.map(Ts)
}

impl Ts {
    /// The SQLite text form.
    pub fn text(self) -> String {
        self.0.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }
}

impl Type<Postgres> for Ts {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Ts {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl Type<Sqlite> for Ts {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for Ts {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.text(), buf)
    }
}

/// A set of strings to bind (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Texts(pub Vec<String>);

impl Texts {
    pub fn of<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Texts {
        Texts(items.into_iter().map(|s| s.as_ref().to_owned()).collect())
    }
}

impl Type<Postgres> for Texts {
    fn type_info() -> PgTypeInfo {
        <Vec<String> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Texts {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Vec<String> as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl Type<Sqlite> for Texts {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for Texts {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(serde_json::to_string(&self.0)?, buf)
    }
}

/// A set of UUIDs to bind (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Uuids(pub Vec<Uuid>);

impl Type<Postgres> for Uuids {
    fn type_info() -> PgTypeInfo {
        <Vec<Uuid> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Uuids {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Vec<Uuid> as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl Type<Sqlite> for Uuids {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for Uuids {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        let hex: Vec<String> = self.0.iter().map(|u| u.simple().to_string()).collect();
        <String as Encode<Sqlite>>::encode(serde_json::to_string(&hex)?, buf)
    }
}

/// A calendar day as bound and read (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub NaiveDate);

impl Type<Postgres> for Day {
    fn type_info() -> PgTypeInfo {
        <NaiveDate as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Day {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <NaiveDate as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Day {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Day(<NaiveDate as Decode<Postgres>>::decode(value)?))
    }
}

impl Type<Sqlite> for Day {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for Day {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.0.format("%Y-%m-%d").to_string(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Day {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Sqlite>>::decode(value)?;
        Ok(Day(NaiveDate::parse_from_str(text, "%Y-%m-%d")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_timestamps_sort_as_text() {
        let a = Ts("2026-01-02T03:04:05.1Z".parse().unwrap());
        let b = Ts("2026-01-02T03:04:05.000002Z".parse().unwrap());
        assert_eq!(a.text(), "2026-01-02T03:04:05.100000Z");
        assert!(b.text() < a.text());
    }
}
