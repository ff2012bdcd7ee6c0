//! The `lamed` subcommands besides `serve`: each reads its arguments and
//! prints data on stdout, messages on stderr.

pub mod aws;
pub mod backup;
pub mod configure;
pub mod dashboard;
pub mod experiments;
pub mod man;
pub mod openapi;
pub mod report;
pub mod webhooks;

/// The width, in characters, of each column of a text table.
pub(crate) fn column_widths<R: AsRef<[String]>>(rows: &[R]) -> Vec<usize> {
    let columns = rows.first().map_or(0, |row| row.as_ref().len());
    (0..columns)
        .map(|col| {
            rows.iter()
                .map(|row| row.as_ref()[col].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect()
}
