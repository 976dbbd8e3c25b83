//! Render and input-validation cost of a ~1 KB template with 8 variables and a loop.
//!
//! Run: `cargo bench -p formaops-core --bench render`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use formaops_core::ids::{PromptId, UserId};
use formaops_core::prompt::{ModelConfig, PromptVersion};
use formaops_core::template::{CompiledPrompt, TemplateLimits};
use formaops_core::variables::{InputLimits, VariableDefinition, VariableType, validate_inputs};
use serde_json::{Map, Value, json};

const TEMPLATE: &str = r#"You are {{ persona }}, writing for {{ audience }} in a friendly, precise tone.

Task: write a short article titled "{{ title }}" of about {{ words }} words.
{% if include_sources %}Cite your sources at the end, one per line, as a numbered list.{% else %}Do not cite sources.{% endif %}

Cover each of the following points, in this order, giving each its own paragraph:
{% for point in points %}
{{ loop.index }}. {{ point.heading }}: {{ point.detail }}{% if not loop.last %};{% else %}.{% endif %}
{% endfor %}
Keep the temperature of the prose around {{ temperature }}: lower is more factual, higher more playful.
Avoid jargon unless it is explained in the same sentence. Prefer short sentences and active verbs.
Do not invent statistics. If a claim needs a number you do not know, say so plainly instead.
End with a one-sentence summary that a busy reader could quote, then stop.
Format: plain text, no Markdown headings, no bullet points, paragraphs separated by blank lines.
Language: {{ language }}. Title case for the title, sentence case elsewhere."#;

fn var(name: &str, kind: VariableType, required: bool, default: Option<Value>) -> VariableDefinition {
    VariableDefinition {
        name: name.to_string(),
        kind,
        required,
        description: None,
        default_value: default,
        values: None,
        schema: None,
        max_length: None,
    }
}

fn definitions() -> Vec<VariableDefinition> {
    let mut language = var("language", VariableType::Enum, false, Some(json!("English")));
    language.values = Some(vec!["English".into(), "French".into(), "German".into()]);
    vec![
        var("persona", VariableType::String, true, None),
        var("audience", VariableType::String, true, None),
        var("title", VariableType::String, true, None),
        var("words", VariableType::Integer, true, None),
        var("include_sources", VariableType::Boolean, false, Some(json!(false))),
        var("points", VariableType::Json, true, None),
        var("temperature", VariableType::Number, true, None),
        language,
    ]
}

fn inputs() -> Map<String, Value> {
    let v = json!({
        "persona": "a science journalist",
        "audience": "curious teenagers",
        "title": "why the sky is blue",
        "words": 600,
        "include_sources": true,
        "temperature": 0.7,
        "language": "English",
        "points": [
            {"heading": "Sunlight", "detail": "white light is a mix of colours"},
            {"heading": "Scattering", "detail": "short wavelengths scatter more"},
            {"heading": "Sunsets", "detail": "long paths leave the reds"},
            {"heading": "Other planets", "detail": "Mars has blue sunsets"}
        ]
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn benches(c: &mut Criterion) {
    let version = PromptVersion {
        prompt_id: PromptId::new(),
        version: 1,
        template: TEMPLATE.to_string(),
        system_template: None,
        variables: definitions(),
        validations: Vec::new(),
        model: ModelConfig::default(),
        created_at: chrono::Utc::now(),
        author: UserId::new(),
    };
    let limits = InputLimits::default();
    let raw = inputs();
    let Ok(compiled) = CompiledPrompt::compile(&version, &TemplateLimits::default()) else {
        panic!("the benchmark template must compile");
    };
    let Ok(validated) = validate_inputs(&version.variables, &raw, &limits) else {
        panic!("the benchmark inputs must validate");
    };
    let rendered = compiled.render(&validated).map(|m| m[0].content.len()).unwrap_or(0);
    eprintln!(
        "template {} bytes, {} variables, rendered {rendered} bytes",
        TEMPLATE.len(),
        version.variables.len()
    );

    c.bench_function("render_1kb_8_vars_loop", |b| b.iter(|| compiled.render(black_box(&validated))));
    c.bench_function("validate_inputs_8_vars", |b| {
        b.iter(|| validate_inputs(black_box(&version.variables), black_box(&raw), &limits))
    });
    c.bench_function("compiled_validate_inputs_8_vars", |b| {
        b.iter(|| compiled.validate_inputs(black_box(&raw), &limits))
    });

    // The same, with a JSON Schema on `points`: compiled per call by `validate_inputs`,
    // once per version by `CompiledPrompt::validate_inputs`.
    let mut with_schema = version.clone();
    if let Some(points) = with_schema.variables.iter_mut().find(|d| d.name == "points") {
        points.schema = Some(json!({
            "type": "array",
            "maxItems": 20,
            "items": {
                "type": "object",
                "required": ["heading", "detail"],
                "properties": {"heading": {"type": "string"}, "detail": {"type": "string"}}
            }
        }));
    }
    let Ok(compiled_schema) = CompiledPrompt::compile(&with_schema, &TemplateLimits::default()) else {
        panic!("the benchmark template must compile");
    };
    c.bench_function("validate_inputs_8_vars_schema", |b| {
        b.iter(|| validate_inputs(black_box(&with_schema.variables), black_box(&raw), &limits))
    });
    c.bench_function("compiled_validate_inputs_8_vars_schema", |b| {
        b.iter(|| compiled_schema.validate_inputs(black_box(&raw), &limits))
    });
}

criterion_group!(render, benches);
criterion_main!(render);
