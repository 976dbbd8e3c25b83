//! Save-time check that a template never reads an optional variable without a default
//! (absent from the render context when omitted) in a way that fails when it is absent.
//!
//! Templates render with [`minijinja::UndefinedBehavior::SemiStrict`]: printing, iterating,
//! comparing, passing to a filter or function (except `default`), or reading an attribute or
//! item of an undefined value fails; testing it (`is defined`, `is none`, ...), taking its
//! truth (`{% if note %}`, `not note`, `note or "x"`) or giving it to `default` / `d` does
//! not. The check walks the syntax tree (minijinja's `unstable_machinery` parser) in order and
//! knows a variable is present:
//!
//! - in the branch of an `if` / `elif` / conditional expression where its condition holds:
//!   `x`, `x is defined`, `not (x is undefined)`, `x is not undefined`, and `and` / `or` / `not`
//!   of these (`{% if a and x is defined %}`, `{% if x is not defined %}...{% else %}` here);
//! - in the right operand of `and` after a left operand that implies it, of `or` after one
//!   whose falsehood implies it (`x is undefined or x == "a"`);
//! - after `{% set x = ... %}` (or `{% set x %}...{% endset %}`, `{% macro x %}`) in the same
//!   block or an enclosing one, and after an `if` all of whose branches make it present
//!   (`{% if x is not defined %}{% set x = "" %}{% endif %}{{ x }}`): minijinja's `if` opens
//!   no scope;
//! - where a loop target, a `with` name or a macro argument of the same name shadows it.
//!
//! A `set` inside a `for` loop, `with`, macro, `filter` or `autoescape` block does not outlive
//! it. A macro body is checked as written where it is defined, not where it is called. Every
//! other reading of the variable is reported (with its line), even one that would not fail
//! by itself (`{% set y = note %}`): its value would be undefined wherever it goes.

use std::collections::HashSet;

use minijinja::machinery::ast::{BinOpKind, CallArg, Expr, Stmt, UnaryOpKind};
use minijinja::machinery::parse;
use minijinja::syntax::SyntaxConfig;

/// An unguarded read: the template line and the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unguarded {
    pub(crate) line: u16,
    pub(crate) name: String,
}

/// Most reads reported per template.
const MAX_FINDINGS: usize = 20;

/// Lists the unguarded reads of the names in `optional` (each name once per line, in source
/// order). A template that does not parse gives an empty list (syntax errors are reported by
/// the compiler). The caller must have bounded the template's nesting ([`super::depth`]):
/// the walk recurses once per level.
pub(crate) fn check(source: &str, optional: &HashSet<&str>) -> Vec<Unguarded> {
    if optional.is_empty() {
        return Vec::new();
    }
    let Ok(ast) = parse(source, "template", SyntaxConfig::default()) else { return Vec::new() };
    let mut walk = Walk { optional, findings: Vec::new() };
    let mut present = Present::default();
    walk.stmt(&ast, &mut present);
    let mut findings = walk.findings;
    findings.sort_by(|a, b| (a.line, &a.name).cmp(&(b.line, &b.name)));
    findings.dedup();
    findings.truncate(MAX_FINDINGS);
    findings
}

/// Names known to be present (or bound by the template) at a point of the walk.
type Present<'s> = HashSet<&'s str>;

/// How a value is used: for its truth only, or as a value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Truth,
    Value,
}

struct Walk<'o> {
    optional: &'o HashSet<&'o str>,
    findings: Vec<Unguarded>,
}

/// What holding (or not holding) a condition tells about which names are present.
struct Facts<'s> {
    if_true: Present<'s>,
    if_false: Present<'s>,
}

fn facts<'s>(e: &Expr<'s>) -> Facts<'s> {
    let one = |name: &'s str| HashSet::from([name]);
    match e {
        Expr::Var(v) => Facts { if_true: one(v.id), if_false: Present::new() },
        Expr::Test(t) => match (&t.expr, t.name) {
            (Expr::Var(v), "defined") => Facts { if_true: one(v.id), if_false: Present::new() },
            (Expr::Var(v), "undefined") => Facts { if_true: Present::new(), if_false: one(v.id) },
            _ => Facts { if_true: Present::new(), if_false: Present::new() },
        },
        Expr::UnaryOp(u) if matches!(u.op, UnaryOpKind::Not) => {
            let f = facts(&u.expr);
            Facts { if_true: f.if_false, if_false: f.if_true }
        }
        Expr::BinOp(b) if matches!(b.op, BinOpKind::ScAnd) => {
            let (l, r) = (facts(&b.left), facts(&b.right));
            Facts {
                if_true: l.if_true.union(&r.if_true).copied().collect(),
                if_false: l.if_false.intersection(&r.if_false).copied().collect(),
            }
        }
        Expr::BinOp(b) if matches!(b.op, BinOpKind::ScOr) => {
            let (l, r) = (facts(&b.left), facts(&b.right));
            Facts {
                if_true: l.if_true.intersection(&r.if_true).copied().collect(),
                if_false: l.if_false.union(&r.if_false).copied().collect(),
            }
        }
        _ => Facts { if_true: Present::new(), if_false: Present::new() },
    }
}

fn with<'s>(present: &Present<'s>, more: &Present<'s>) -> Present<'s> {
    present.union(more).copied().collect()
}

/// Adds every name an assignment target binds.
fn bind<'s>(target: &Expr<'s>, present: &mut Present<'s>) {
    match target {
        Expr::Var(v) => {
            present.insert(v.id);
        }
        Expr::Tuple(t) => t.items.iter().for_each(|i| bind(i, present)),
        Expr::List(l) => l.items.iter().for_each(|i| bind(i, present)),
        _ => {}
    }
}

impl<'o> Walk<'o> {
    fn stmts<'s>(&mut self, body: &[Stmt<'s>], present: &mut Present<'s>) {
        for s in body {
            self.stmt(s, present);
        }
    }

    /// Walks a block that opens a scope: what it binds does not outlive it.
    fn scoped<'s>(&mut self, body: &[Stmt<'s>], present: &Present<'s>) {
        let mut inner = present.clone();
        self.stmts(body, &mut inner);
    }

    fn stmt<'s>(&mut self, s: &Stmt<'s>, present: &mut Present<'s>) {
        match s {
            Stmt::Template(t) => self.stmts(&t.children, present),
            Stmt::EmitExpr(e) => self.expr(&e.expr, present, Use::Value),
            Stmt::EmitRaw(_) | Stmt::Continue(_) | Stmt::Break(_) => {}
            Stmt::ForLoop(f) => {
                self.expr(&f.iter, present, Use::Value);
                let mut inner = present.clone();
                bind(&f.target, &mut inner);
                inner.insert("loop");
                if let Some(e) = &f.filter_expr {
                    self.expr(e, &inner, Use::Truth);
                    inner.extend(facts(e).if_true);
                }
                self.stmts(&f.body, &mut inner);
                self.scoped(&f.else_body, present);
            }
            Stmt::IfCond(i) => {
                self.expr(&i.expr, present, Use::Truth);
                let f = facts(&i.expr);
                let mut yes = with(present, &f.if_true);
                let mut no = with(present, &f.if_false);
                self.stmts(&i.true_body, &mut yes);
                self.stmts(&i.false_body, &mut no);
                // `if` opens no scope: what every branch binds is bound after it.
                present.extend(yes.intersection(&no).copied().collect::<Vec<_>>());
            }
            Stmt::WithBlock(w) => {
                let mut inner = present.clone();
                for (target, e) in &w.assignments {
                    self.expr(e, &inner, Use::Value);
                    bind(target, &mut inner);
                }
                self.stmts(&w.body, &mut inner);
            }
            Stmt::Set(set) => {
                self.expr(&set.expr, present, Use::Value);
                self.target(&set.target, present);
                bind(&set.target, present);
            }
            Stmt::SetBlock(b) => {
                if let Some(f) = &b.filter {
                    self.expr(f, present, Use::Value);
                }
                self.scoped(&b.body, present);
                self.target(&b.target, present);
                bind(&b.target, present);
            }
            Stmt::AutoEscape(a) => {
                self.expr(&a.enabled, present, Use::Value);
                self.scoped(&a.body, present);
            }
            Stmt::FilterBlock(f) => {
                self.expr(&f.filter, present, Use::Value);
                self.scoped(&f.body, present);
            }
            Stmt::Block(b) => self.scoped(&b.body, present),
            Stmt::Import(i) => {
                self.expr(&i.expr, present, Use::Value);
                bind(&i.name, present);
            }
            Stmt::FromImport(i) => {
                self.expr(&i.expr, present, Use::Value);
                for (name, alias) in &i.names {
                    bind(alias.as_ref().unwrap_or(name), present);
                }
            }
            Stmt::Extends(e) => self.expr(&e.name, present, Use::Value),
            Stmt::Include(i) => self.expr(&i.name, present, Use::Value),
            Stmt::Macro(m) => {
                present.insert(m.name);
                self.macro_decl(&m.args, &m.defaults, &m.body, present);
            }
            Stmt::CallBlock(c) => {
                self.expr(&c.call.expr, present, Use::Value);
                self.args(&c.call.args, present);
                let m = &c.macro_decl;
                self.macro_decl(&m.args, &m.defaults, &m.body, present);
            }
            Stmt::Do(d) => {
                self.expr(&d.call.expr, present, Use::Value);
                self.args(&d.call.args, present);
            }
        }
    }

    fn macro_decl<'s>(
        &mut self,
        args: &[Expr<'s>],
        defaults: &[Expr<'s>],
        body: &[Stmt<'s>],
        present: &Present<'s>,
    ) {
        for d in defaults {
            self.expr(d, present, Use::Value);
        }
        let mut inner = present.clone();
        for a in args {
            bind(a, &mut inner);
        }
        inner.extend(["caller", "varargs", "kwargs"]);
        self.stmts(body, &mut inner);
    }

    /// An assignment target reads what it assigns into (`ns` of `{% set ns.a = 1 %}`).
    fn target<'s>(&mut self, target: &Expr<'s>, present: &Present<'s>) {
        match target {
            Expr::Var(_) => {}
            Expr::Tuple(t) => t.items.iter().for_each(|i| self.target(i, present)),
            Expr::List(l) => l.items.iter().for_each(|i| self.target(i, present)),
            Expr::GetAttr(g) => self.expr(&g.expr, present, Use::Value),
            other => self.expr(other, present, Use::Value),
        }
    }

    fn args<'s>(&mut self, args: &[CallArg<'s>], present: &Present<'s>) {
        for arg in args {
            let (CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e)) =
                arg;
            self.expr(e, present, Use::Value);
        }
    }

    /// Checks every read in `e`, used as `how`, where the names in `present` are present.
    fn expr<'s>(&mut self, e: &Expr<'s>, present: &Present<'s>, how: Use) {
        match e {
            Expr::Var(v) => {
                if how == Use::Value && self.optional.contains(v.id) && !present.contains(v.id) {
                    self.findings.push(Unguarded { line: e.span().start_line, name: v.id.to_string() });
                }
            }
            Expr::Const(_) => {}
            Expr::Test(t) => {
                // Any test of a bare variable is safe on an undefined value.
                if !matches!(t.expr, Expr::Var(_)) {
                    self.expr(&t.expr, present, Use::Value);
                }
                self.args(&t.args, present);
            }
            Expr::Filter(f) => {
                if let Some(operand) = &f.expr {
                    let safe = matches!(f.name, "default" | "d") && matches!(operand, Expr::Var(_));
                    if !safe {
                        self.expr(operand, present, Use::Value);
                    }
                }
                self.args(&f.args, present);
            }
            Expr::UnaryOp(u) => {
                let inner = if matches!(u.op, UnaryOpKind::Not) { Use::Truth } else { Use::Value };
                self.expr(&u.expr, present, inner);
            }
            Expr::BinOp(b) if matches!(b.op, BinOpKind::ScAnd) => {
                // `x and y` is `x` when `x` is false: a value only if `x` is.
                self.expr(&b.left, present, how);
                self.expr(&b.right, &with(present, &facts(&b.left).if_true), how);
            }
            Expr::BinOp(b) if matches!(b.op, BinOpKind::ScOr) => {
                // `x or y` is `x` only when `x` is true, hence defined.
                self.expr(&b.left, present, Use::Truth);
                self.expr(&b.right, &with(present, &facts(&b.left).if_false), how);
            }
            Expr::BinOp(b) => {
                self.expr(&b.left, present, Use::Value);
                self.expr(&b.right, present, Use::Value);
            }
            Expr::IfExpr(i) => {
                self.expr(&i.test_expr, present, Use::Truth);
                let f = facts(&i.test_expr);
                self.expr(&i.true_expr, &with(present, &f.if_true), how);
                if let Some(no) = &i.false_expr {
                    self.expr(no, &with(present, &f.if_false), how);
                }
            }
            Expr::Compare(c) => {
                self.expr(&c.expr, present, Use::Value);
                for op in &c.ops {
                    self.expr(&op.expr, present, Use::Value);
                }
            }
            Expr::Slice(s) => {
                self.expr(&s.expr, present, Use::Value);
                for b in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(b, present, Use::Value);
                }
            }
            Expr::GetAttr(g) => self.expr(&g.expr, present, Use::Value),
            Expr::GetItem(g) => {
                self.expr(&g.expr, present, Use::Value);
                self.expr(&g.subscript_expr, present, Use::Value);
            }
            Expr::Call(c) => {
                self.expr(&c.expr, present, Use::Value);
                self.args(&c.args, present);
            }
            Expr::List(l) => l.items.iter().for_each(|i| self.expr(i, present, Use::Value)),
            Expr::Tuple(t) => t.items.iter().for_each(|i| self.expr(i, present, Use::Value)),
            Expr::Map(m) => m.keys.iter().chain(&m.values).for_each(|i| self.expr(i, present, Use::Value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use crate::error::Error;
    use crate::prompt::{PromptVersion, check_version};
    use crate::template::{CompiledPrompt, TemplateLimits};
    use crate::variables::InputLimits;

    /// `name` is required, `note` optional without a default.
    fn version(template: &str, system: Option<&str>) -> PromptVersion {
        let mut v = crate::template::tests::version(template, system, &["name", "note"]);
        v.variables[1].required = false;
        v
    }

    /// (field, message) of every problem `check_version` reports.
    fn problems(v: &PromptVersion) -> Vec<(String, String, String)> {
        match check_version(v, &TemplateLimits::default(), &InputLimits::default()) {
            Ok(()) => Vec::new(),
            Err(Error::InvalidPrompt { problems }) => {
                problems.into_iter().map(|p| (p.field, p.code.to_string(), p.message)).collect()
            }
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    fn render(v: &PromptVersion, inputs: Value) -> crate::error::Result<String> {
        let c = CompiledPrompt::compile(v, &TemplateLimits::default())?;
        let Value::Object(m) = inputs else { unreachable!() };
        let m: Map<String, Value> = m;
        Ok(c.render(&m)?.into_iter().map(|m| m.content).collect::<Vec<_>>().join("|"))
    }

    /// Every guarded form is accepted when saved, and really renders with `note` omitted
    /// (and given).
    #[test]
    fn guarded_reads_are_accepted_and_render_without_the_variable() {
        let cases = [
            ("{% if note %}{{ note }}{% endif %}", "", "hi"),
            ("{% if note is defined %}{{ note | upper }}{% endif %}", "", "HI"),
            ("{% if note is not defined %}none{% else %}{{ note }}{% endif %}", "none", "hi"),
            (
                r#"{% if note is undefined %}-{% elif note == "x" %}x{% else %}{{ note }}{% endif %}"#,
                "-",
                "hi",
            ),
            ("{% if not note %}-{% else %}{{ note }}{% endif %}", "-", "hi"),
            ("{% if not (note is undefined) %}{{ note }}{% endif %}", "", "hi"),
            (r#"{{ note | default("") }}"#, "", "hi"),
            (r#"{{ note | d("-") | upper }}"#, "-", "HI"),
            (r#"{{ note if note is defined else "none" }}"#, "none", "hi"),
            (r#"{{ note ~ "!" if note else "" }}"#, "", "hi!"),
            (r#"{{ note or "none" }}"#, "none", "hi"),
            ("{% if name and note is defined %}{{ name ~ note }}{% endif %}", "", "Adahi"),
            ("{{ note is defined and note | length > 1 }}", "false", "true"),
            (
                r#"{% if note is undefined or note == "" %}empty{% else %}{{ note }}{% endif %}"#,
                "empty",
                "hi",
            ),
            (
                "{% if note %}{% for i in range(2) %}{% if i %}{{ note }}{% endif %}{% endfor %}{% endif %}",
                "",
                "hi",
            ),
            ("{% for c in note | default([]) %}{{ c }}.{% endfor %}", "", "h.i."),
            (r#"{% set note = note | default("none") %}{{ note }}"#, "none", "hi"),
            (r#"{% if note is not defined %}{% set note = "none" %}{% endif %}{{ note }}"#, "none", "hi"),
            (r#"{% set t = "-" %}{% if note %}{% set t = note %}{% endif %}{{ t }}"#, "-", "hi"),
            (
                "{% macro show(n) %}[{{ n }}]{% endmacro %}{% if note %}{{ show(note) }}{% endif %}",
                "",
                "[hi]",
            ),
            (
                "{% macro show() %}{% if note is defined %}{{ note }}{% endif %}{% endmacro %}{{ show() }}",
                "",
                "hi",
            ),
            (r#"{% for note in ["a", "b"] %}{{ note }}{% endfor %}"#, "ab", "ab"),
            (r#"{% with n = note | default("") %}{{ n }}{% endwith %}"#, "", "hi"),
            (r#"{% set ns = namespace(t=note | default("")) %}{{ ns.t }}"#, "", "hi"),
            ("{% filter upper %}{% if note %}{{ note }}{% endif %}{% endfilter %}", "", "HI"),
            ("{% set s %}{% if note %}{{ note }}{% endif %}{% endset %}{{ s }}", "", "hi"),
            ("{% for i in range(2) if note is defined %}{{ note }}{% endfor %}", "", "hihi"),
            ("{{ note is none }} {{ note is string }}", "false false", "false true"),
            ("{% call(x) note_or(1) %}{% endcall %}", "", ""),
        ];
        for (template, absent, given) in cases {
            let template = if template.contains("note_or") {
                // A call block's body is checked like a macro's.
                r#"{% macro m() %}{{ caller() }}{% endmacro %}{% call m() %}{{ note | default("") }}{% endcall %}"#
            } else {
                template
            };
            let v = version(template, None);
            assert_eq!(problems(&v), Vec::new(), "{template}");
            let got = render(&v, json!({"name": "Ada"})).unwrap_or_else(|e| panic!("{template}: {e}"));
            assert_eq!(got, absent, "{template} without note");
            if !template.contains("caller") {
                let got = render(&v, json!({"name": "Ada", "note": "hi"}))
                    .unwrap_or_else(|e| panic!("{template}: {e}"));
                assert_eq!(got, given, "{template} with note");
            }
        }
    }

    /// Every unguarded read is refused, naming the variable, the template and the line; the
    /// ones marked `fails` really fail to render with `note` omitted.
    #[test]
    fn unguarded_reads_are_refused_naming_variable_and_line() {
        let cases = [
            ("{{ note }}", 1, true),
            ("Hello\n{{ note | upper }}", 2, true),
            ("{% for c in note %}{{ c }}{% endfor %}", 1, true),
            (r#"{% if note == "x" %}x{% endif %}"#, 1, true),
            ("{{ note.title }}", 1, true),
            (r#"{{ note.x | default("") }}"#, 1, true),
            ("{{ note and note | upper }}", 1, true),
            ("{% if name %}\n{{ note }}{% endif %}", 2, true),
            ("{% if note is defined %}{% endif %}{{ note }}", 1, true),
            ("{% if note is not defined %}none{% endif %}\n\n{{ note }}", 3, true),
            (r#"{% for i in range(2) %}{% set note = "x" %}{% endfor %}{{ note }}"#, 1, true),
            ("{% macro m() %}\n{{ note }}{% endmacro %}{{ m() }}", 2, true),
            (r#"{{ note if name else "" }}"#, 1, true),
            ("{% set x = note %}{{ x }}", 1, true),
            ("{% with n = note %}{{ n }}{% endwith %}", 1, true),
            ("{{ note is defined or note }}", 1, true),
            ("{% macro m(x) %}{{ x }}{% endmacro %}{{ m(note) }}", 1, true),
            ("{{ note ~ name }}", 1, true),
            (r#"{% if name %}{% set note = "x" %}{% endif %}{{ note }}"#, 1, false),
            ("{% if note is none %}{{ note }}{% endif %}", 1, false),
        ];
        for (template, line, fails) in cases {
            let v = version(template, None);
            let got = problems(&v);
            assert_eq!(got.len(), 1, "{template}: {got:?}");
            let (field, code, message) = &got[0];
            assert_eq!((field.as_str(), code.as_str()), ("template", "unguarded"), "{template}");
            assert!(
                message.starts_with(&format!("line {line}: optional variable `note`")),
                "{template}: {message}"
            );
            assert!(message.contains("{% if note is defined %}"), "{message}");
            if fails {
                let err = render(&v, json!({"name": "Ada"})).expect_err(template);
                assert!(err.to_string().contains("`note`"), "{template}: {err}");
            }
        }
    }

    #[test]
    fn only_optional_variables_without_a_default_are_checked() {
        let mut v = version("{{ name }} {{ note }}", Some("{{ note }}"));
        let got = problems(&v);
        let fields: Vec<_> = got.iter().map(|(f, c, _)| (f.as_str(), c.as_str())).collect();
        assert_eq!(fields, vec![("template", "unguarded"), ("systemTemplate", "unguarded")]);
        v.variables[1].default_value = Some(json!("x"));
        assert_eq!(problems(&v), Vec::new(), "a default makes it present");
        v.variables[1].default_value = None;
        v.variables[1].required = true;
        assert_eq!(problems(&v), Vec::new(), "a required variable is always present");
        // Every line is reported once, up to the limit.
        let many = (0..30).map(|_| "{{ note }}{{ note }}").collect::<Vec<_>>().join("\n");
        let v = version(&many, None);
        assert_eq!(problems(&v).len(), super::MAX_FINDINGS);
    }
}
