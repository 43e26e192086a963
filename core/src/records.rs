//! Tabular instances: records of named fields, as a CSV row under its header or a JSON object gives
//! them. Which fields a model needs, and how it encodes them, is the model's business.

use crate::InputError;

/// One field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Number(f64),
    Text(String),
    /// An empty CSV cell, or a JSON `null`.
    Missing,
}

/// One instance: fields by name, in the order they came.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record(pub Vec<(String, Field)>);

impl Record {
    /// The field `name` (exactly as written), if the record has it.
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.0
            .iter()
            .find_map(|(field, value)| (field == name).then_some(value))
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl Field {
    /// The value as a number: a JSON number, or text that reads as one. `None` when missing.
    pub fn number(&self, column: &str) -> Result<Option<f64>, InputError> {
        match self {
            Self::Number(value) => Ok(Some(*value)),
            Self::Text(text) => {
                text.trim()
                    .parse::<f64>()
                    .map(Some)
                    .map_err(|_| InputError::Field {
                        column: column.to_owned(),
                        problem: format!("`{text}` is not a number"),
                    })
            }
            Self::Missing => Ok(None),
        }
    }

    /// The value as text (a number as written); `None` when missing or blank.
    pub fn text(&self) -> Option<String> {
        match self {
            Self::Number(value) => Some(value.to_string()),
            Self::Text(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
            Self::Text(_) | Self::Missing => None,
        }
    }
}

/// The rows of a CSV body with a header row, each a record keyed by the header's names (empty
/// cells are [`Field::Missing`]). At most `max_rows` rows; rows are numbered from 1 after the header.
pub fn parse_csv(bytes: &[u8], max_rows: usize) -> Result<Vec<Record>, InputError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .map_err(|err| InputError::Csv(format!("header row cannot be read ({err})")))?
        .iter()
        .map(str::to_owned)
        .collect();
    if header.iter().all(String::is_empty) {
        return Err(InputError::Csv(
            "is empty: send a header row of column names, then a row per passenger".into(),
        ));
    }
    let mut records = Vec::new();
    for (index, row) in reader.records().enumerate() {
        let number = index + 1;
        let row = row.map_err(|err| match err.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => InputError::Csv(format!(
                "row {number} has {len} values, the header {expected_len}"
            )),
            _ => InputError::Csv(format!("row {number} cannot be read ({err})")),
        })?;
        if records.len() == max_rows {
            return Err(InputError::TooManyRows { limit: max_rows });
        }
        records.push(Record(
            header
                .iter()
                .zip(row.iter())
                .map(|(name, cell)| {
                    let value = if cell.is_empty() {
                        Field::Missing
                    } else {
                        Field::Text(cell.to_owned())
                    };
                    (name.clone(), value)
                })
                .collect(),
        ));
    }
    if records.is_empty() {
        return Err(InputError::Csv(
            "has a header but no rows: send a row per passenger".into(),
        ));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_records_keyed_by_the_header() {
        let csv = b"pclass,name,sex,age\n1,\"Allen, Miss. Elisabeth\",female,29\n3, Smith ,male,\n";
        let records = parse_csv(csv, 10).expect("parses");
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0].get("name"),
            Some(&Field::Text("Allen, Miss. Elisabeth".into()))
        );
        assert_eq!(records[1].get("name"), Some(&Field::Text("Smith".into())));
        assert_eq!(records[1].get("age"), Some(&Field::Missing));
        assert_eq!(
            records[0]
                .get("age")
                .map(|f| f.number("age"))
                .transpose()
                .ok(),
            Some(Some(Some(29.0)))
        );
        assert!(records[0]
            .get("sex")
            .and_then(|f| f.number("sex").err())
            .is_some());
    }

    #[test]
    fn empty_ragged_and_oversized_bodies_are_refused_naming_the_row() {
        let message = |csv: &[u8], max| parse_csv(csv, max).expect_err("refused").to_string();
        assert!(message(b"", 10).contains("empty"));
        assert!(message(b"a,b\n", 10).contains("no rows"));
        assert!(message(b"a,b\n1,2\n1,2,3\n", 10).contains("row 2 has 3 values, the header 2"));
        assert!(message(b"a\n1\n2\n3\n", 2).contains("more than 2"));
    }
}
