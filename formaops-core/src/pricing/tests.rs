use std::str::FromStr;

use chrono::{Duration, TimeZone};

use super::*;

fn usage(input: u64, output: u64, cached: u64) -> TokenUsage {
    TokenUsage { input, output, cached, reasoning: 0, total: input + output, estimated: false }
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
}

fn million() -> TokenUsage {
    usage(1_000_000, 1_000_000, 0)
}

fn price(input: &str, output: &str) -> ModelPrice {
    ModelPrice { input_per_mtok: dec(input), output_per_mtok: dec(output), cached_input_per_mtok: None }
}

fn parse_err(text: &str) -> String {
    PriceFile::parse(text, "/etc/formaops/prices.toml").unwrap_err().to_string()
}

const ENTRY: &str = "[[prices]]\nmodel = \"m\"\neffective_from = 2026-01-01\ninput_per_mtok = \"1\"\n\
                     output_per_mtok = \"2\"\n";

#[test]
fn the_builtin_file_parses_with_its_source_and_date() {
    let file = PriceFile::parse(BUILTIN_PRICES_TOML, "built-in").unwrap();
    assert_eq!(file.source.as_deref(), Some("https://platform.openai.com/docs/pricing"));
    assert!(file.checked.is_some(), "the built-in table says when it was checked");
    assert!(!file.replace_builtin);
    assert!(file.entries.len() >= 20, "{}", file.entries.len());
    let table = PriceTable::builtin();
    assert_eq!(table.sources().len(), 1);
    assert_eq!(table.sources()[0].origin, "built-in");
    assert_eq!(table.sources()[0].entries, file.entries.len());
    assert_eq!(PriceTable::default(), *table);
}

#[test]
fn gpt_4o_mini_cost_is_exact() {
    let t = PriceTable::default();
    // 1000 input of which 400 cached, 500 output:
    // 600 * 0.15 + 400 * 0.075 + 500 * 0.60 = 90 + 30 + 300 = 420 per 1M -> 0.00042
    let c = t.cost("gpt-4o-mini", &usage(1000, 500, 400), Utc::now());
    assert_eq!(c, Some(dec("0.00042")));
}

#[test]
fn known_builtin_prices() {
    let t = PriceTable::default();
    let now = Utc::now();
    for (model, cost) in [
        ("gpt-4o", "12.5"),
        // OpenAI's pricing page: $5 / $15 for 2024-05-13, no cached discount.
        ("gpt-4o-2024-05-13", "20"),
        ("gpt-4o-2024-08-06", "12.5"),
        ("gpt-4o-mini-2024-07-18", "0.75"),
        ("gpt-4.1-2025-04-14", "10"),
        ("o3", "10"),
        ("o4-mini", "5.5"),
    ] {
        assert_eq!(t.cost(model, &million(), now), Some(dec(cost)), "{model}");
    }
    let p = t.price("gpt-4o-2024-05-13", now).unwrap();
    assert_eq!(p.cached_input_per_mtok, None, "no cached discount for gpt-4o-2024-05-13");
    assert_eq!(t.cost("gpt-4o-2024-05-13", &usage(1_000_000, 0, 1_000_000), now), Some(dec("5")));
}

#[test]
fn unknown_model_is_unpriced_and_mock_is_zero() {
    let t = PriceTable::default();
    let now = Utc::now();
    assert_eq!(t.cost("my-local-llama", &usage(10, 10, 0), now), None);
    assert_eq!(t.cost("mock", &usage(10, 10, 0), now), Some(Decimal::ZERO));
    assert_eq!(PriceTable::empty().cost("gpt-4o", &usage(1, 1, 0), now), None);
}

#[test]
fn a_snapshot_has_its_own_price_or_none() {
    let t = PriceTable::default();
    for model in ["gpt-4o-2099-01-01", "gpt-4o-mini-2030-12-31", "o3-2026-01-01", "gpt-4o-mini-2024-07-1x"] {
        assert_eq!(t.cost(model, &million(), Utc::now()), None, "{model}");
    }
}

#[test]
fn a_builtin_price_change_applies_from_its_date() {
    // o3 launched at $10 / $40 and was cut to $2 / $8 on 2025-06-10.
    let t = PriceTable::default();
    assert_eq!(t.cost("o3", &million(), day(2025, 6, 9) + Duration::hours(23)), Some(dec("50")));
    assert_eq!(t.cost("o3", &million(), day(2025, 6, 10)), Some(dec("10")));
    // Before its first price, a model is unpriced.
    assert_eq!(t.cost("o3", &million(), day(2025, 4, 15)), None);
    assert_eq!(t.prices("o3").len(), 2);
}

#[test]
fn a_price_effective_tomorrow_does_not_change_todays_cost() {
    let mut t = PriceTable::empty();
    let now = Utc::now();
    let tomorrow = (now + Duration::days(1)).date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    t.set_from("m", now - Duration::days(30), price("1", "1"));
    t.set_from("m", tomorrow, price("3", "3"));
    assert_eq!(t.cost("m", &million(), now), Some(dec("2")));
    assert_eq!(t.cost("m", &million(), tomorrow - Duration::microseconds(1)), Some(dec("2")));
    assert_eq!(t.cost("m", &million(), tomorrow), Some(dec("6")));
    // Replacing the entry of the same instant keeps one price per instant.
    t.set_from("m", tomorrow, price("4", "4"));
    assert_eq!(t.prices("m").len(), 2);
    assert_eq!(t.cost("m", &million(), tomorrow + Duration::days(9)), Some(dec("8")));
    // `set` is one price for all time.
    t.set("m", price("0.5", "0.5"));
    assert_eq!(t.cost("m", &million(), day(1990, 1, 1)), Some(dec("1")));
    assert_eq!(t.prices("m").len(), 1);
}

#[test]
fn cached_beyond_input_is_capped_and_override_applies() {
    let mut t = PriceTable::default();
    t.set("gpt-4o", price("1", "1"));
    // cached > input: all input at the (input) price, no negative count.
    assert_eq!(t.cost("gpt-4o", &usage(1_000_000, 0, 5_000_000), Utc::now()), Some(Decimal::ONE));
}

#[test]
fn an_overflowing_cost_is_unpriced_not_a_panic() {
    let mut t = PriceTable::empty();
    t.set(
        "m",
        ModelPrice {
            input_per_mtok: Decimal::MAX,
            output_per_mtok: Decimal::MAX,
            cached_input_per_mtok: None,
        },
    );
    let huge = TokenUsage { input: u64::MAX, output: u64::MAX, total: u64::MAX, ..TokenUsage::default() };
    assert_eq!(t.cost("m", &huge, Utc::now()), None);
}

#[test]
fn an_operator_file_extends_the_builtin_table() {
    let dir = std::env::temp_dir().join(format!("formaops-prices-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("prices.toml");
    std::fs::write(
        &path,
        "source = \"https://example.com/our-contract\"\nchecked = 2026-11-01\n\
         [[prices]]\nmodel = \"gpt-4o\"\neffective_from = 2024-08-06\ninput_per_mtok = \"2\"\noutput_per_mtok = \"8\"\n\
         [[prices]]\nmodel = \"gpt-4o\"\neffective_from = \"2027-01-01T00:00:00Z\"\ninput_per_mtok = \"1\"\noutput_per_mtok = \"4\"\n\
         [[prices]]\nmodel = \"my-llama\"\neffective_from = 2020-01-01\ninput_per_mtok = \"0\"\noutput_per_mtok = \"0.001\"\n",
    )
    .unwrap();
    let t = PriceTable::load(&path).unwrap();
    // Same (model, effective_from): replaced; a later date: added; a new model: added.
    assert_eq!(t.cost("gpt-4o", &million(), day(2026, 11, 30)), Some(dec("10")));
    assert_eq!(t.cost("gpt-4o", &million(), day(2027, 1, 1)), Some(dec("5")));
    assert_eq!(t.cost("my-llama", &million(), day(2026, 11, 30)), Some(dec("0.001")));
    // The rest of the built-in table is still there.
    assert_eq!(t.cost("gpt-4o-2024-05-13", &million(), day(2026, 11, 30)), Some(dec("20")));
    assert_eq!(t.sources().len(), 2);
    assert_eq!(t.sources()[1].source.as_deref(), Some("https://example.com/our-contract"));
    assert_eq!(t.sources()[1].entries, 3);

    std::fs::write(&path, format!("replace_builtin = true\n{ENTRY}")).unwrap();
    let t = PriceTable::load(&path).unwrap();
    assert_eq!(t.cost("gpt-4o", &million(), day(2026, 11, 30)), None, "the built-in table is replaced");
    assert_eq!(t.cost("m", &million(), day(2026, 11, 30)), Some(dec("3")));
    assert_eq!(t.model_count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_file_is_refused_naming_the_file_and_the_fault() {
    // A float, not a decimal string: toml's own error, with its line and column.
    let e = parse_err(&ENTRY.replace("\"2\"", "2.5"));
    assert!(e.contains("/etc/formaops/prices.toml") && e.contains("line 5") && e.contains("string"), "{e}");
    for (text, wants) in [
        (ENTRY.replace("\"2\"", "\"-1\""), "line 5, column 19: output_per_mtok"),
        (ENTRY.replace("\"1\"", "\"1e3\""), "line 4, column 18: input_per_mtok"),
        (ENTRY.replace("\"1\"", "\"+1\""), "input_per_mtok"),
        (ENTRY.replace("\"1\"", "\"1.\""), "input_per_mtok"),
        (ENTRY.replace("\"1\"", "\"2000000\""), "input_per_mtok"),
        (ENTRY.replace("\"1\"", "\"0.0000000000001\""), "at most 12 decimal places"),
        (ENTRY.replace("2026-01-01", "2026-01-01T10:00:00"), "line 3, column 18: effective_from"),
        (ENTRY.replace("2026-01-01", "\"soon\""), "effective_from"),
        (ENTRY.replace("\"m\"", "\"\""), "line 2, column 9: model"),
        (format!("{ENTRY}{ENTRY}"), "already has a price effective from 2026-01-01 00:00:00 UTC (line 2)"),
        (format!("{ENTRY}typo = 1\n"), "unknown field `typo`"),
        (format!("checked = \"yesterday\"\n{ENTRY}"), "line 1, column 11: checked"),
        ("[[prices]]\nmodel = \"m\"\n".to_string(), "missing field"),
    ] {
        let e = parse_err(&text);
        assert!(e.contains("/etc/formaops/prices.toml") && e.contains(wants), "{wants}: {e}");
    }
    let mut text = String::new();
    for i in 0..=MAX_PRICE_ENTRIES {
        text.push_str(&ENTRY.replace("\"m\"", &format!("\"m{i}\"")));
    }
    assert!(parse_err(&text).contains("at most 10000"), "too many entries");
}

#[test]
fn an_unreadable_or_oversized_file_is_refused_naming_it() {
    let missing = std::path::Path::new("/nonexistent/formaops/prices.toml");
    let e = PriceTable::load(missing).unwrap_err().to_string();
    assert!(e.contains("prices_file") && e.contains("/nonexistent/formaops/prices.toml"), "{e}");
    let path = std::env::temp_dir().join(format!("formaops-big-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, "#".repeat(MAX_PRICES_FILE_BYTES as usize + 1)).unwrap();
    let e = PriceTable::load(&path).unwrap_err().to_string();
    assert!(e.contains("larger than 1048576 bytes") && e.contains(&path.display().to_string()), "{e}");
    std::fs::remove_file(&path).unwrap();
}
