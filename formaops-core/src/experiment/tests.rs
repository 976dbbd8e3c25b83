use serde_json::json;

use super::*;
use crate::execution::{ExecutionMetrics, NewExecution, TokenUsage};

#[test]
fn match_rules() {
    assert!(MatchRule::Exact.check("yes", &json!("yes")).unwrap());
    assert!(!MatchRule::Exact.check("yes ", &json!("yes")).unwrap());
    assert!(MatchRule::Exact.check("3", &json!(3)).unwrap());
    assert!(MatchRule::JsonEqual.check("{\"a\": 1, \"b\": [2]}", &json!({"b": [2], "a": 1})).unwrap());
    assert!(MatchRule::JsonEqual.check("{\"a\":1}", &json!("{ \"a\" : 1 }")).unwrap());
    assert!(!MatchRule::JsonEqual.check("not json", &json!({"a": 1})).unwrap());
    assert!(MatchRule::Contains.check("the grey sea", &json!("grey")).unwrap());
    assert!(MatchRule::Regex.check("order 42 shipped", &json!("\\d+ shipped$")).unwrap());
    assert!(!MatchRule::Regex.check("order shipped", &json!("^\\d")).unwrap());
    assert!(MatchRule::Regex.check("x", &json!("(")).is_err());
    assert_eq!("json_equal".parse::<MatchRule>().unwrap(), MatchRule::JsonEqual);
}

fn experiment(targets: &[u32], rows: u32) -> Experiment {
    Experiment {
        id: ExperimentId::new(),
        user_id: UserId::new(),
        prompt_id: PromptId::new(),
        dataset_id: DatasetId::new(),
        targets: targets.iter().map(|v| ExperimentTarget { requested: v.to_string(), version: *v }).collect(),
        priority: Priority::Low,
        concurrency: 2,
        match_rule: Some(MatchRule::Exact),
        validate_output: false,
        status: ExperimentStatus::Running,
        row_count: rows,
        created_at: Utc::now(),
        finished_at: None,
    }
}

fn execution(x: &Experiment, version: u32, status: ExecutionStatus, output: &str, latency: u64) -> Execution {
    let now = Utc::now();
    let mut e = Execution::queued(NewExecution {
        user_id: x.user_id,
        prompt_id: x.prompt_id,
        prompt_version: version,
        inputs: Map::new(),
        priority: Priority::Low,
        validate_output: false,
        provider: "mock".into(),
        model: "mock".into(),
        max_attempts: 1,
        retry_of: None,
        idempotency_key: None,
        created_at: now,
        deadline_at: now,
        queue_key: 0,
    });
    e.status = status;
    if status == ExecutionStatus::Completed {
        e.output = Some(output.to_string());
        e.metrics = Some(ExecutionMetrics {
            latency_ms: latency,
            provider_latency_ms: latency,
            queue_ms: 0,
            token_usage: TokenUsage { input: 3, output: 2, total: 5, ..Default::default() },
            cost_usd: Some(Decimal::new(1, 3)),
        });
    }
    e
}

#[test]
fn comparison_side_by_side_and_exports() {
    let x = experiment(&[1, 2], 3);
    let rows: Vec<DatasetRow> = (0..3)
        .map(|i| DatasetRow {
            index: i,
            inputs: json!({"n": i}).as_object().unwrap().clone(),
            expected: Some(json!("ok")),
        })
        .collect();
    let mk = |row: u32, version: u32, e: Execution| {
        (ExperimentRun { experiment_id: x.id, row, version, execution_id: e.id }, e)
    };
    let runs = vec![
        mk(0, 1, execution(&x, 1, ExecutionStatus::Completed, "ok", 10)),
        mk(1, 1, execution(&x, 1, ExecutionStatus::Completed, "no", 30)),
        mk(2, 1, execution(&x, 1, ExecutionStatus::Failed, "", 0)),
        mk(0, 2, execution(&x, 2, ExecutionStatus::Completed, "ok", 20)),
        mk(1, 2, execution(&x, 2, ExecutionStatus::Queued, "", 0)),
    ];
    let p = progress(&x, &runs);
    assert_eq!((p.total, p.done, p.failed, p.in_flight), (6, 3, 1, 1));
    assert_eq!(p.cost_usd, Some(Decimal::new(3, 3)));

    // Rows given out of order come back by index.
    let mut shuffled = rows.clone();
    shuffled.reverse();
    let c = compare(&x, &shuffled, &runs);
    assert_eq!(c.rows.iter().map(|r| r.index).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(c.rows[0].results.iter().map(|r| r.matched).collect::<Vec<_>>(), vec![Some(true), Some(true)]);
    assert_eq!(c.rows[1].results[0].matched, Some(false));
    assert_eq!(c.rows[1].results[1].status, Some(ExecutionStatus::Queued));
    assert_eq!(c.rows[2].results[1].execution_id, None);
    let v1 = &c.versions[0];
    assert_eq!((v1.version, v1.match_checked, v1.matched), (1, 2, 1));
    assert_eq!(v1.match_rate, Some(0.5));
    assert_eq!(v1.summary.counts.completed, 2);
    assert_eq!(v1.summary.counts.failed, 1);
    assert_eq!(v1.summary.latency_ms.p50, Some(10.0));
    assert_eq!(v1.summary.latency_ms.p99, Some(30.0));
    assert_eq!(v1.summary.tokens.total, 10);
    assert_eq!(c.versions[1].match_rate, Some(1.0));

    let jsonl = export_jsonl(&c).unwrap();
    let lines: Vec<Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0]["row"], json!(0));
    assert_eq!(lines[0]["version"], json!(1));
    assert_eq!(lines[0]["output"], json!("ok"));
    assert_eq!(lines[0]["matched"], json!(true));
    assert_eq!(lines[0]["costUsd"], json!(0.001));
    let csv = export_csv(&c).unwrap();
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(r.headers().unwrap().get(5), Some("output"));
    let recs: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    assert_eq!(recs.len(), 6);
    assert_eq!(recs[0].get(2), Some("{\"n\":0}"));
    assert_eq!(recs[2].get(4), Some("COMPLETED"));
    assert_eq!(recs[2].get(7), Some("false"));
}
