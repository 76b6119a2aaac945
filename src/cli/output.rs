//! What the commands print: JSON, aligned tables, archives.

use serde::Serialize;

use super::CliError;
use crate::backup::TenantArchive;

pub(super) fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        format!("{}…", flat.chars().take(max - 1).collect::<String>())
    }
}

/// Compact JSON on stdout (the vectors make a pretty file long, not
/// readable), through a buffer: a closed pipe is an error, not a panic.
pub(super) fn write_archive(archive: &TenantArchive) -> Result<(), CliError> {
    use std::io::Write;
    let failed = |e: String| CliError::Failed(format!("cannot write the archive: {e}"));
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer(&mut out, archive).map_err(|e| failed(e.to_string()))?;
    out.write_all(b"\n").map_err(|e| failed(e.to_string()))?;
    out.flush().map_err(|e| failed(e.to_string()))
}

pub(super) fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Failed(e.to_string()))?;
    println!("{text}");
    Ok(())
}

pub(super) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
