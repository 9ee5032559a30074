//! One statement and its bound values, run by any [`Driver`].
//!
//! The script writes the SQL once with numbered placeholders (`$1`, `$2`:
//! both databases read them), binds its values in order, and runs it on a
//! connection of its driver. Dynamic statements (filters, multi-row
//! `VALUES`) are built with [`Query::push`] and [`Query::push_bind`], which
//! numbers the placeholders itself.

use std::borrow::Cow;

use sqlx::error::BoxDynError;

use super::{Driver, Row, Value};
use crate::store::StoreError;

/// A statement being built; see the module docs.
pub struct Query<D: Driver> {
    sql: Cow<'static, str>,
    args: D::Args,
    bound: usize,
    error: Option<BoxDynError>,
}

/// Starts a set-based statement over a batch's rows: `WITH v (columns) AS
/// (VALUES (...), ...) `, one tuple per row bound by `f`. The rest of the
/// statement (pushed after) joins `v`, so a batch of any size is one
/// statement. Name the columns so they cannot clash with the table's
/// (`v_id`, `v_attempt`): an unqualified `RETURNING` must stay unambiguous.
pub fn with_rows<D: Driver, T>(
    columns: &str,
    rows: impl IntoIterator<Item = T>,
    f: impl FnMut(&mut Tuple<'_, D>, T),
) -> Query<D> {
    let mut q = query::<D>(format!("WITH v ({columns}) AS ("));
    q.push_values(rows, f);
    q.push(") ");
    q
}

/// Starts a statement.
pub fn query<D: Driver>(sql: impl Into<Cow<'static, str>>) -> Query<D> {
    Query {
        sql: sql.into(),
        args: D::Args::default(),
        bound: 0,
        error: None,
    }
}

impl<D: Driver> Query<D> {
    /// Binds the next placeholder's value.
    pub fn bind<'q, T: Value<'q>>(mut self, value: T) -> Self {
        self.add(value);
        self
    }

    fn add<'q, T: Value<'q>>(&mut self, value: T) {
        self.bound += 1;
        if self.error.is_none()
            && let Err(error) = D::add(&mut self.args, value)
        {
            self.error = Some(error);
        }
    }

    /// Appends SQL text.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.to_mut().push_str(sql);
        self
    }

    /// Appends the next placeholder and binds its value.
    pub fn push_bind<'q, T: Value<'q>>(&mut self, value: T) -> &mut Self {
        self.add(value);
        D::push_placeholder(self.sql.to_mut(), self.bound);
        self
    }

    /// Appends ` <in_texts>` and binds the set: membership of what precedes
    /// it in `set`.
    pub fn push_in_texts(&mut self, set: super::Texts) -> &mut Self {
        self.add(set);
        let mut placeholder = String::new();
        D::push_placeholder(&mut placeholder, self.bound);
        self.push(" ");
        self.push(&D::in_texts_at(&placeholder));
        self
    }

    /// Appends `VALUES (...), (...)`: one tuple per row, its values bound by
    /// `f` through [`Tuple::bind`].
    pub fn push_values<T>(
        &mut self,
        rows: impl IntoIterator<Item = T>,
        mut f: impl FnMut(&mut Tuple<'_, D>, T),
    ) -> &mut Self {
        self.push("VALUES ");
        for (i, row) in rows.into_iter().enumerate() {
            self.push(if i == 0 { "(" } else { ", (" });
            let mut tuple = Tuple {
                query: self,
                first: true,
            };
            f(&mut tuple, row);
            self.push(")");
        }
        self
    }

    fn checked(self) -> Result<(Cow<'static, str>, D::Args), StoreError> {
        match self.error {
            Some(error) => Err(StoreError::Database(sqlx::Error::Encode(error))),
            None => Ok((self.sql, self.args)),
        }
    }

    /// Runs it; how many rows it changed.
    pub async fn execute(self, conn: &mut D::Conn) -> Result<u64, StoreError> {
        let (sql, args) = self.checked()?;
        Ok(D::execute(conn, sql, args).await?)
    }

    /// The first row, if any.
    pub async fn fetch_optional<R: Row>(self, conn: &mut D::Conn) -> Result<Option<R>, StoreError> {
        let (sql, args) = self.checked()?;
        Ok(D::fetch_optional(conn, sql, args).await?)
    }

    /// The first row; none is an error.
    pub async fn fetch_one<R: Row>(self, conn: &mut D::Conn) -> Result<R, StoreError> {
        self.fetch_optional(conn)
            .await?
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// Every row.
    pub async fn fetch_all<R: Row>(self, conn: &mut D::Conn) -> Result<Vec<R>, StoreError> {
        let (sql, args) = self.checked()?;
        Ok(D::fetch_all(conn, sql, args).await?)
    }
}

/// One row of a `VALUES` list (see [`Query::push_values`]).
pub struct Tuple<'a, D: Driver> {
    query: &'a mut Query<D>,
    first: bool,
}

impl<D: Driver> Tuple<'_, D> {
    /// Binds the tuple's next value.
    pub fn bind<'q, T: Value<'q>>(&mut self, value: T) -> &mut Self {
        if !self.first {
            self.query.push(", ");
        }
        self.first = false;
        self.query.push_bind(value);
        self
    }
}
