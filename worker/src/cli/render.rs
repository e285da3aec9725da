//! The one path by which commands print what they read: JSON for machines
//! (`--json`), text and tables for people.

use std::io::Write;

use serde::Serialize;

/// Writes `value` as pretty JSON when `json`, else as `text` renders it.
pub fn emit<W: Write, T: Serialize + ?Sized>(
    out: &mut W,
    json: bool,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, value)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", text(value))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_pretty_with_a_final_newline_and_text_is_written_as_rendered() {
        let mut out = Vec::new();
        emit(&mut out, true, &[1, 2], |_| unreachable!()).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "[\n  1,\n  2\n]\n");
        let mut out = Vec::new();
        emit(&mut out, false, &[1, 2], |v| format!("{} items\n", v.len())).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "2 items\n");
    }
}
