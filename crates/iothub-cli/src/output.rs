//! Printing results: pretty JSON or tables, with keys masked unless `--show-keys`.

use std::io::Write as _;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;
use serde_json::Value;

use crate::args::OutputFormat;
use crate::error::{CliError, Result};

/// What masked keys are replaced with.
pub const MASK: &str = "<hidden: use --show-keys>";

/// Field names whose values are secrets.
const SECRET_FIELDS: [&str; 3] = ["primaryKey", "secondaryKey", "sharedAccessKey"];

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// JSON or tables.
    pub format: OutputFormat,
    /// Print keys instead of [`MASK`].
    pub show_keys: bool,
}

/// Replaces every secret field's string value with [`MASK`], at any depth.
pub fn mask_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (name, v) in map.iter_mut() {
                if SECRET_FIELDS.contains(&name.as_str()) && v.is_string() {
                    *v = Value::String(MASK.to_owned());
                } else {
                    mask_keys(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_keys),
        _ => {}
    }
}

/// A cell's text: strings as they are, `null` as empty, everything else as compact JSON.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The value at a dotted path (`authentication.type`).
fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

fn new_table() -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table
}

impl Output {
    fn to_value<T: Serialize>(self, value: &T) -> Result<Value> {
        let mut value = serde_json::to_value(value)
            .map_err(|e| CliError::new(format!("cannot encode the result: {e}")))?;
        if !self.show_keys {
            mask_keys(&mut value);
        }
        Ok(value)
    }

    fn write(text: &str) -> Result<()> {
        let mut out = std::io::stdout().lock();
        match writeln!(out, "{text}").and_then(|()| out.flush()) {
            // A closed pipe (`| head`) is not an error of the command.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other.map_err(CliError::from),
        }
    }

    /// Prints one result: JSON, or a two-column table of its top-level fields.
    pub fn one<T: Serialize>(&self, value: &T) -> Result<()> {
        let value = self.to_value(value)?;
        match (self.format, &value) {
            (OutputFormat::Table, Value::Object(map)) => {
                let mut table = new_table();
                table.set_header(["field", "value"]);
                for (name, v) in map {
                    if !v.is_null() {
                        table.add_row([name.clone(), cell(Some(v))]);
                    }
                }
                Self::write(&table.to_string())
            }
            _ => Self::write(&pretty(&value)),
        }
    }

    /// Prints a list: a JSON array, or a table with `columns` (dotted paths; empty means
    /// every top-level field of the first row).
    pub fn list<T: Serialize>(&self, rows: &[T], columns: &[&str]) -> Result<()> {
        let rows = rows
            .iter()
            .map(|r| self.to_value(r))
            .collect::<Result<Vec<_>>>()?;
        match self.format {
            OutputFormat::Json => Self::write(&pretty(&Value::Array(rows))),
            OutputFormat::Table => {
                let columns: Vec<String> = if columns.is_empty() {
                    let mut names: Vec<String> = Vec::new();
                    for row in &rows {
                        match row {
                            Value::Object(map) => {
                                for k in map.keys() {
                                    if !names.contains(k) {
                                        names.push(k.clone());
                                    }
                                }
                            }
                            _ if names.is_empty() => names.push("value".to_owned()),
                            _ => {}
                        }
                    }
                    names
                } else {
                    columns.iter().map(|c| (*c).to_owned()).collect()
                };
                let mut table = new_table();
                table.set_header(columns.clone());
                for row in &rows {
                    let cells: Vec<String> = columns
                        .iter()
                        .map(|c| match row {
                            Value::Object(_) => cell(at(row, c)),
                            other => cell(Some(other)),
                        })
                        .collect();
                    table.add_row(cells);
                }
                Self::write(&table.to_string())?;
                Self::write(&format!("{} row(s)", rows.len()))
            }
        }
    }

    /// Prints a line of text for people (tables) or a JSON object (json).
    pub fn event(&self, text: &str, json: &Value) -> Result<()> {
        match self.format {
            OutputFormat::Table => Self::write(text),
            OutputFormat::Json => {
                let mut json = json.clone();
                if !self.show_keys {
                    mask_keys(&mut json);
                }
                Self::write(&json.to_string())
            }
        }
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_masked_at_any_depth() {
        let mut v = json!({"deviceId": "d", "authentication": {"symmetricKey": {
            "primaryKey": "c2VjcmV0", "secondaryKey": "c2VjcmV0Mg=="}},
            "list": [{"primaryKey": "x"}], "primaryKeyCount": 3});
        mask_keys(&mut v);
        let text = v.to_string();
        assert!(!text.contains("c2VjcmV0"), "{text}");
        assert!(!text.contains("\"x\""), "{text}");
        assert_eq!(v["primaryKeyCount"], 3);
        assert_eq!(v["deviceId"], "d");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn dotted_paths_and_cells() {
        let v = json!({"a": {"b": 1, "c": "x"}, "n": null});
        assert_eq!(cell(at(&v, "a.b")), "1");
        assert_eq!(cell(at(&v, "a.c")), "x");
        assert_eq!(cell(at(&v, "n")), "");
        assert_eq!(cell(at(&v, "missing.path")), "");
    }
}
