//! Datasets: named lists of input rows, each with an optional expected output, owned by a user.
//!
//! Rows come from JSONL ([`parse_jsonl`]), CSV ([`parse_csv`]), JSON ([`check_rows`]) or past
//! executions ([`FromExecutions`], applied by the engine). Every parser reports *every* bad
//! line at once, by line number, and yields nothing on error, so a dataset is stored whole or
//! not at all. Rows are checked against a version's variables only when they are used
//! ([`validate_rows`]), each problem named by row index and variable.
//!
//! # Shapes
//!
//! - JSONL: one object per line, `{"inputs": {"topic": "the sea"}, "expected": "..."}`;
//!   `expected` is optional and may be any JSON value; blank lines are skipped.
//! - CSV: a header row of variable names; a column named `expected` is the expected output;
//!   every other cell is a string input (an empty cell is an omitted input).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Problem, ProblemCode, Result};
use crate::execution::ExecutionStatus;
use crate::ids::{DatasetId, PromptId, UserId};
use crate::variables::{InputLimits, InputValidator};

/// Most rows in one dataset.
pub const MAX_DATASET_ROWS: usize = 10_000;
/// Most bytes of one row (its inputs and expected output as JSON).
pub const MAX_ROW_BYTES: usize = 64 * 1024;
/// Longest dataset name, in characters.
pub const MAX_DATASET_NAME_CHARS: usize = 200;
/// Most problems listed in one error (the rest are counted in a last problem).
pub const MAX_PROBLEMS: usize = 100;
/// The CSV column holding a row's expected output.
pub const EXPECTED_COLUMN: &str = "expected";

/// A dataset (its rows are read separately, in pages).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dataset {
    /// The dataset's id.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: DatasetId,
    /// The owner.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub user_id: UserId,
    /// Unique among the owner's datasets; trimmed, 1 to [`MAX_DATASET_NAME_CHARS`] characters.
    pub name: String,
    /// How many rows it has (rows are indexed `0..row_count`).
    pub row_count: u32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// One row: the inputs of one execution, and optionally what its output should be.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatasetRow {
    /// Position in the dataset, from 0 (assigned when the dataset is created).
    #[serde(default)]
    pub index: u32,
    /// Variable values by name.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub inputs: Map<String, Value>,
    /// The expected output or a reference (a string, or any JSON value); `None` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Value>,
}

/// Which past executions of a prompt become rows: the filters of the executions list.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FromExecutions {
    /// The new dataset's name.
    pub name: String,
    /// The prompt whose executions are replayed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub prompt_id: PromptId,
    /// Only executions in this status (any when omitted).
    #[serde(default)]
    pub status: Option<ExecutionStatus>,
    /// Only executions of this version.
    #[serde(default)]
    pub version: Option<u32>,
    /// Created at or after.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// Created strictly before.
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// Most rows (newest executions first); [`MAX_DATASET_ROWS`] when omitted.
    #[serde(default)]
    pub limit: Option<u32>,
    /// Use each COMPLETED execution's output as the row's expected output.
    #[serde(default)]
    pub expected_from_output: bool,
}

/// Checks a dataset name and returns it trimmed.
///
/// # Errors
/// [`Error::InvalidArgument`] on `name` when it is empty, longer than
/// [`MAX_DATASET_NAME_CHARS`] characters, or has control characters.
pub fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::invalid_argument("name", "must not be empty"));
    }
    if name.chars().count() > MAX_DATASET_NAME_CHARS {
        return Err(Error::invalid_argument(
            "name",
            format!("is longer than {MAX_DATASET_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid_argument("name", "must not contain control characters"));
    }
    Ok(name.to_string())
}

/// Collects problems, capped at [`MAX_PROBLEMS`] with a count of the rest.
#[derive(Debug, Default)]
struct Problems {
    list: Vec<Problem>,
    more: usize,
}

impl Problems {
    fn push(&mut self, p: Problem) {
        if self.list.len() < MAX_PROBLEMS {
            self.list.push(p);
        } else {
            self.more += 1;
        }
    }

    fn into_result<T>(mut self, ok: T) -> Result<T> {
        if self.list.is_empty() {
            return Ok(ok);
        }
        if self.more > 0 {
            self.list.push(Problem::new(
                "rows",
                ProblemCode::TooLarge,
                format!("{} more problems not listed", self.more),
            ));
        }
        Err(Error::InvalidInputs { problems: self.list })
    }
}

/// The problems of one row (size, storable text), at `field`.
fn row_problems(field: &str, row: &DatasetRow, out: &mut Problems) {
    let size = serde_json::to_vec(&row.inputs).map_or(usize::MAX, |v| v.len())
        + row.expected.as_ref().map_or(0, |e| serde_json::to_vec(e).map_or(usize::MAX, |v| v.len()));
    if size > MAX_ROW_BYTES {
        out.push(Problem::new(
            field,
            ProblemCode::TooLarge,
            format!("is {size} bytes; a row holds at most {MAX_ROW_BYTES}"),
        ));
    }
    let inputs = Value::Object(row.inputs.clone());
    if let Some(p) = crate::text::value_problem(format!("{field}.inputs"), &inputs) {
        out.push(p);
    }
    if let Some(p) =
        row.expected.as_ref().and_then(|e| crate::text::value_problem(format!("{field}.expected"), e))
    {
        out.push(p);
    }
}

fn too_many_rows(n: usize) -> Error {
    Error::invalid_argument("rows", format!("{n} rows given; a dataset holds at most {MAX_DATASET_ROWS}"))
}

/// Checks rows given as values (JSON), numbering them `0..`; each problem is named
/// `rows[i]...`.
///
/// # Errors
/// [`Error::InvalidArgument`] when there are no rows or more than [`MAX_DATASET_ROWS`];
/// [`Error::InvalidInputs`] listing every row over [`MAX_ROW_BYTES`] or with a NUL character.
pub fn check_rows(mut rows: Vec<DatasetRow>) -> Result<Vec<DatasetRow>> {
    if rows.is_empty() {
        return Err(Error::invalid_argument("rows", "a dataset needs at least one row"));
    }
    if rows.len() > MAX_DATASET_ROWS {
        return Err(too_many_rows(rows.len()));
    }
    let mut problems = Problems::default();
    for (i, row) in rows.iter_mut().enumerate() {
        row.index = u32::try_from(i).unwrap_or(u32::MAX);
        row_problems(&format!("rows[{i}]"), row, &mut problems);
    }
    problems.into_result(rows)
}

/// Reads rows given as JSON values (one `{"inputs": {...}, "expected": ...}` object each, as
/// from a language binding), numbering them `0..` and checking them as [`check_rows`] does. Problems are named
/// `rows[i]`; every bad row is listed at once.
///
/// # Errors
/// [`Error::InvalidArgument`] when there are no rows or more than [`MAX_DATASET_ROWS`];
/// [`Error::InvalidInputs`] listing every value that is not a row object, and every row over
/// [`MAX_ROW_BYTES`] or with a NUL character.
pub fn rows_from_values(values: Vec<Value>) -> Result<Vec<DatasetRow>> {
    if values.len() > MAX_DATASET_ROWS {
        return Err(too_many_rows(values.len()));
    }
    let mut rows = Vec::with_capacity(values.len());
    let mut problems = Problems::default();
    for (i, value) in values.into_iter().enumerate() {
        match serde_json::from_value::<DatasetRow>(value) {
            Ok(mut row) => {
                row.index = u32::try_from(i).unwrap_or(u32::MAX);
                row_problems(&format!("rows[{i}]"), &row, &mut problems);
                rows.push(row);
            }
            Err(e) => problems.push(Problem::new(
                format!("rows[{i}]"),
                ProblemCode::Invalid,
                format!("is not a row object {{\"inputs\": {{...}}, \"expected\": ...}}: {e}"),
            )),
        }
    }
    if rows.is_empty() && problems.list.is_empty() {
        return Err(Error::invalid_argument("rows", "a dataset needs at least one row"));
    }
    problems.into_result(rows)
}

/// Parses JSONL (see the module docs). Problems are named `line N` (1-based).
///
/// # Errors
/// [`Error::InvalidArgument`] for no rows or more than [`MAX_DATASET_ROWS`];
/// [`Error::InvalidInputs`] listing every line that is not a row object, too large, or holds a
/// NUL character.
pub fn parse_jsonl(text: &str) -> Result<Vec<DatasetRow>> {
    let mut rows = Vec::new();
    let mut problems = Problems::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if rows.len() >= MAX_DATASET_ROWS {
            return Err(too_many_rows(MAX_DATASET_ROWS + 1));
        }
        let field = format!("line {}", n + 1);
        if line.len() > MAX_ROW_BYTES + 64 {
            problems.push(Problem::new(
                &field,
                ProblemCode::TooLarge,
                format!("a row holds at most {MAX_ROW_BYTES} bytes"),
            ));
            continue;
        }
        match serde_json::from_str::<DatasetRow>(line) {
            Ok(mut row) => {
                row.index = u32::try_from(rows.len()).unwrap_or(u32::MAX);
                row_problems(&field, &row, &mut problems);
                rows.push(row);
            }
            Err(e) => problems.push(Problem::new(
                &field,
                ProblemCode::Invalid,
                format!("is not a row object {{\"inputs\": {{...}}, \"expected\": ...}}: {e}"),
            )),
        }
    }
    if rows.is_empty() && problems.list.is_empty() {
        return Err(Error::invalid_argument("rows", "a dataset needs at least one row"));
    }
    problems.into_result(rows)
}

/// Parses CSV (see the module docs). Problems are named `line N` (1-based, the header is
/// line 1).
///
/// # Errors
/// [`Error::InvalidArgument`] for a missing or bad header, no rows or more than
/// [`MAX_DATASET_ROWS`]; [`Error::InvalidInputs`] listing every line that does not parse,
/// has the wrong number of cells, is too large or holds a NUL character.
pub fn parse_csv(text: &str) -> Result<Vec<DatasetRow>> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| Error::invalid_argument("header", format!("line 1 does not parse: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if header.is_empty() || header.iter().all(String::is_empty) {
        return Err(Error::invalid_argument("header", "line 1 must name the columns"));
    }
    let mut seen = std::collections::HashSet::new();
    for h in &header {
        if h.is_empty() {
            return Err(Error::invalid_argument("header", "a column has no name"));
        }
        if !seen.insert(h.as_str()) {
            return Err(Error::invalid_argument("header", format!("column {h:?} is given twice")));
        }
    }
    let mut rows = Vec::new();
    let mut problems = Problems::default();
    for record in reader.records() {
        if rows.len() >= MAX_DATASET_ROWS {
            return Err(too_many_rows(MAX_DATASET_ROWS + 1));
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(Problem::new(
                    format!("line {line}"),
                    ProblemCode::Invalid,
                    format!("does not parse: {e}"),
                ));
                continue;
            }
        };
        let field = format!("line {}", record.position().map_or(0, |p| p.line()));
        if record.len() != header.len() {
            problems.push(Problem::new(
                &field,
                ProblemCode::Invalid,
                format!("has {} cells; the header has {}", record.len(), header.len()),
            ));
            continue;
        }
        let mut row =
            DatasetRow { index: u32::try_from(rows.len()).unwrap_or(u32::MAX), ..Default::default() };
        for (name, cell) in header.iter().zip(record.iter()) {
            if cell.is_empty() {
                continue;
            }
            if name == EXPECTED_COLUMN {
                row.expected = Some(Value::String(cell.to_string()));
            } else {
                row.inputs.insert(name.clone(), Value::String(cell.to_string()));
            }
        }
        row_problems(&field, &row, &mut problems);
        rows.push(row);
    }
    if rows.is_empty() && problems.list.is_empty() {
        return Err(Error::invalid_argument("rows", "a dataset needs at least one row"));
    }
    problems.into_result(rows)
}

/// Validates rows against a version's variables (compiled once in `validator`): every
/// problem of every row, named `rows[i].inputs.<variable>`. Returns the validated inputs
/// (defaults filled in), in row order.
///
/// # Errors
/// [`Error::InvalidInputs`] listing the problems (at most [`MAX_PROBLEMS`], then a count).
pub fn validate_rows(
    validator: &InputValidator,
    rows: &[DatasetRow],
    limits: &InputLimits,
) -> Result<Vec<Map<String, Value>>> {
    let mut problems = Problems::default();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        match validator.validate(&row.inputs, limits) {
            Ok(inputs) => out.push(inputs),
            Err(Error::InvalidInputs { problems: ps }) => {
                for p in ps {
                    problems.push(Problem { field: format!("rows[{}].{}", row.index, p.field), ..p });
                }
            }
            Err(e) => return Err(e),
        }
    }
    problems.into_result(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::variables::VariableDefinition;

    fn problems(e: Error) -> Vec<(String, ProblemCode)> {
        match e {
            Error::InvalidInputs { problems } => problems.into_iter().map(|p| (p.field, p.code)).collect(),
            other => panic!("expected InvalidInputs, got {other:?}"),
        }
    }

    #[test]
    fn jsonl_rows_and_every_bad_line() {
        let rows =
            parse_jsonl("{\"inputs\": {\"a\": \"x\"}, \"expected\": \"y\"}\n\n{\"inputs\": {\"a\": 2}}\n")
                .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].index, 1);
        assert_eq!(rows[0].expected, Some(json!("y")));
        let err =
            parse_jsonl("{\"inputs\": {}}\nnot json\n{\"input\": {}}\n{\"inputs\": {\"a\": \"\\u0000\"}}\n")
                .unwrap_err();
        let ps = problems(err);
        assert_eq!(
            ps,
            vec![
                ("line 2".to_string(), ProblemCode::Invalid),
                ("line 3".to_string(), ProblemCode::Invalid),
                ("line 4.inputs.a".to_string(), ProblemCode::InvalidCharacter),
            ]
        );
        assert!(matches!(parse_jsonl("\n\n"), Err(Error::InvalidArgument { .. })));
    }

    #[test]
    fn rows_from_values_lists_every_bad_row() {
        let rows = rows_from_values(vec![
            json!({"inputs": {"a": "x"}, "expected": {"k": 1}}),
            json!({"inputs": {}}),
        ])
        .unwrap();
        assert_eq!((rows[1].index, rows[0].expected.clone()), (1, Some(json!({"k": 1}))));
        let err = rows_from_values(vec![
            json!({"inputs": {}}),
            json!({"input": {}}),
            json!("text"),
            json!({"inputs": {"a": "\u{0}"}}),
        ])
        .unwrap_err();
        assert_eq!(
            problems(err),
            vec![
                ("rows[1]".to_string(), ProblemCode::Invalid),
                ("rows[2]".to_string(), ProblemCode::Invalid),
                ("rows[3].inputs.a".to_string(), ProblemCode::InvalidCharacter),
            ]
        );
        assert!(matches!(rows_from_values(Vec::new()), Err(Error::InvalidArgument { .. })));
    }

    #[test]
    fn csv_header_expected_and_bad_lines() {
        let rows = parse_csv("topic,lines,expected\nthe sea,3,waves\n\"a, b\",,\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].inputs, json!({"topic": "the sea", "lines": "3"}).as_object().unwrap().clone());
        assert_eq!(rows[0].expected, Some(json!("waves")));
        assert_eq!(rows[1].inputs.len(), 1);
        assert_eq!(rows[1].expected, None);
        let ps = problems(parse_csv("a,b\n1,2\n1\n1,2,3\n").unwrap_err());
        assert_eq!(
            ps,
            vec![("line 3".into(), ProblemCode::Invalid), ("line 4".into(), ProblemCode::Invalid)]
        );
        assert!(matches!(parse_csv("a,a\n1,2\n"), Err(Error::InvalidArgument { .. })));
    }

    #[test]
    fn limits_on_rows_and_names() {
        let big = "x".repeat(MAX_ROW_BYTES + 1);
        let ps = problems(
            check_rows(vec![DatasetRow {
                inputs: json!({"a": big}).as_object().unwrap().clone(),
                ..Default::default()
            }])
            .unwrap_err(),
        );
        assert_eq!(ps, vec![("rows[0]".into(), ProblemCode::TooLarge)]);
        let many = "{\"inputs\": {}}\n".repeat(MAX_DATASET_ROWS + 1);
        assert!(matches!(parse_jsonl(&many), Err(Error::InvalidArgument { .. })));
        assert_eq!(check_name("  q  ").unwrap(), "q");
        assert!(check_name(" ").is_err());
        assert!(check_name("a\nb").is_err());
        assert!(check_name(&"n".repeat(MAX_DATASET_NAME_CHARS + 1)).is_err());
    }

    #[test]
    fn rows_validated_by_index_and_variable() {
        let defs: Vec<VariableDefinition> = serde_json::from_value(json!([
            {"name": "topic", "type": "string", "required": true},
            {"name": "n", "type": "integer", "defaultValue": 2}
        ]))
        .unwrap();
        let rows = check_rows(vec![
            DatasetRow { inputs: json!({"topic": "a"}).as_object().unwrap().clone(), ..Default::default() },
            DatasetRow { inputs: json!({"n": "x"}).as_object().unwrap().clone(), ..Default::default() },
        ])
        .unwrap();
        let v = InputValidator::new(&defs);
        let ps = problems(validate_rows(&v, &rows, &InputLimits::default()).unwrap_err());
        assert_eq!(
            ps,
            vec![
                ("rows[1].inputs.topic".into(), ProblemCode::Missing),
                ("rows[1].inputs.n".into(), ProblemCode::WrongType)
            ]
        );
        let ok = validate_rows(&v, &rows[..1], &InputLimits::default()).unwrap();
        assert_eq!(ok[0]["n"], json!(2));
    }
}
