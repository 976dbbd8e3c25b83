//! Compile-time check for the two ways a minijinja 3.1 template can build data without fuel
//! being charged first: list/tuple concatenation with `+` (lazy up to 32 levels, then
//! materialised item by item, so doubling builds 2^n items) and `~` with a container operand
//! (formatted in full before the result is charged).
//!
//! The check infers, flow-insensitively (every assignment anywhere in the template counts),
//! a [`Kind`] for each expression and rejects `+` whose operands may both be containers
//! unless both come straight from inputs, and `~` whose operand may be a container that was
//! built inside the template.

use std::collections::{HashMap, HashSet};

use minijinja::machinery::ast::{BinOpKind, CallArg, Expr, Stmt};
use minijinja::machinery::parse;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::ValueKind;

/// What an expression may evaluate to, from most to least known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// A string, number, boolean or none: growth of these is charged fuel.
    Scalar,
    /// A declared input or a part / selection of one: bounded by the input limits.
    Input,
    /// Anything, including a container the template built itself.
    Unknown,
}

/// Most list/map levels a template may wrap around a value (on top of the input's own
/// nesting): formatting, comparing and dropping a value recurse once per level, so a value
/// built from itself (`{% set ns.a = [ns.a] %}` in a loop) must not nest without bound.
pub const MAX_BUILT_NESTING: usize = crate::variables::MAX_JSON_DEPTH;

/// Most passes of the fixpoint iteration (each pass that changes something raises at
/// least one name's kind; a template this long-winded is rejected).
const MAX_PASSES: usize = 256;

/// Filters whose result is a string, number or boolean.
const SCALAR_FILTERS: &[&str] = &[
    "abs",
    "bool",
    "capitalize",
    "center",
    "count",
    "e",
    "escape",
    "float",
    "indent",
    "int",
    "join",
    "length",
    "lower",
    "pprint",
    "replace",
    "round",
    "safe",
    "split_whitespace_count",
    "string",
    "striptags",
    "sum",
    "title",
    "tojson",
    "trim",
    "truncate",
    "upper",
    "urlencode",
    "wordcount",
];
/// Filters that return items, or a reordering / selection, of their operand.
const SELECTING_FILTERS: &[&str] = &[
    "dictsort",
    "first",
    "items",
    "last",
    "list",
    "max",
    "min",
    "reject",
    "rejectattr",
    "reverse",
    "select",
    "selectattr",
    "sort",
    "unique",
];
/// Attributes of the `loop` variable that are numbers or booleans.
const LOOP_SCALARS: &[&str] =
    &["index", "index0", "revindex", "revindex0", "first", "last", "length", "depth", "depth0"];

/// A rejected operation: the template line and what is wrong.
pub(crate) struct Finding {
    pub(crate) line: u16,
    pub(crate) message: String,
}

struct Analysis<'s, 'd> {
    declared: &'d HashMap<String, Kind>,
    /// Kinds of names the template assigns (`set`, loop targets, macro arguments, ...).
    names: HashMap<&'s str, Kind>,
    /// Names assigned a `namespace(...)`, and names assigned anything else.
    namespaces: HashSet<&'s str>,
    other: HashSet<&'s str>,
    /// Kinds of namespace attributes, by attribute name (joined over all namespaces).
    attrs: HashMap<&'s str, Kind>,
    /// A namespace was built from something other than keyword arguments.
    opaque_namespace: bool,
    macros: HashSet<&'s str>,
    /// How many list/map levels the template may have wrapped around a value, per
    /// assigned name and per namespace attribute (see [`Analysis::nest`]).
    nests: HashMap<&'s str, usize>,
    attr_nests: HashMap<&'s str, usize>,
    /// The deepest nesting passed to a macro, `caller` or recursive `loop` call.
    arg_nest: usize,
    changed: bool,
    collect: bool,
    findings: Vec<Finding>,
}

/// Parses `source` and lists every unbounded operation. Syntax errors are left to the
/// compiler (an empty list is returned).
pub(crate) fn check(source: &str, declared: &HashMap<String, Kind>) -> Vec<Finding> {
    let Ok(ast) = parse(source, "template", SyntaxConfig::default()) else { return Vec::new() };
    let mut a = Analysis {
        declared,
        names: HashMap::new(),
        namespaces: HashSet::new(),
        other: HashSet::new(),
        attrs: HashMap::new(),
        opaque_namespace: false,
        macros: HashSet::new(),
        nests: HashMap::new(),
        attr_nests: HashMap::new(),
        arg_nest: 0,
        changed: false,
        collect: false,
        findings: Vec::new(),
    };
    let mut converged = false;
    for _ in 0..MAX_PASSES {
        a.changed = false;
        a.stmt(&ast);
        if !a.changed {
            converged = true;
            break;
        }
    }
    if !converged {
        return vec![Finding {
            line: 1,
            message: "the template's assignments are too intricate to check for unbounded growth".to_string(),
        }];
    }
    a.collect = true;
    a.stmt(&ast);
    a.findings
}

fn raise<'s>(map: &mut HashMap<&'s str, Kind>, key: &'s str, kind: Kind, changed: &mut bool) {
    let entry = map.entry(key).or_insert_with(|| {
        *changed = true;
        kind
    });
    if kind > *entry {
        *entry = kind;
        *changed = true;
    }
}

/// Raises a nesting depth, saturating just past [`MAX_BUILT_NESTING`] so that a value
/// built from itself (which grows by a level on each pass) converges.
fn raise_nest<'s>(map: &mut HashMap<&'s str, usize>, key: &'s str, nest: usize, changed: &mut bool) {
    let nest = nest.min(MAX_BUILT_NESTING + 1);
    let entry = map.entry(key).or_insert(0);
    if nest > *entry {
        *entry = nest;
        *changed = true;
    }
}

/// Filters whose result nests its operand one level deeper.
const NESTING_FILTERS: &[&str] = &["batch", "slice", "groupby", "items", "dictsort", "zip"];

fn is_call_to(e: &Expr<'_>, name: &str) -> bool {
    matches!(e, Expr::Call(c) if matches!(&c.expr, Expr::Var(v) if v.id == name))
}

impl<'s> Analysis<'s, '_> {
    fn stmts(&mut self, body: &[Stmt<'s>]) {
        for s in body {
            self.stmt(s);
        }
    }

    fn stmt(&mut self, s: &Stmt<'s>) {
        match s {
            Stmt::Template(t) => self.stmts(&t.children),
            Stmt::EmitExpr(e) => {
                self.kind(&e.expr);
            }
            Stmt::EmitRaw(_) | Stmt::Continue(_) | Stmt::Break(_) => {}
            Stmt::ForLoop(f) => {
                let iter = self.kind(&f.iter);
                let item = if f.recursive {
                    // `loop(...)` may pass the next level anything.
                    Kind::Unknown
                } else if is_call_to(&f.iter, "range") {
                    Kind::Scalar
                } else {
                    iter
                };
                // An item is nested one level less than the list it comes from; `loop(...)`
                // hands the next level a new list.
                let mut nest = self.nest(&f.iter);
                if f.recursive {
                    nest = nest.max(self.arg_nest);
                }
                let nest = nest.saturating_sub(1);
                self.assign(&f.target, item, nest);
                if let Some(e) = &f.filter_expr {
                    self.kind(e);
                }
                self.stmts(&f.body);
                self.stmts(&f.else_body);
            }
            Stmt::IfCond(i) => {
                self.kind(&i.expr);
                self.stmts(&i.true_body);
                self.stmts(&i.false_body);
            }
            Stmt::WithBlock(w) => {
                for (target, e) in &w.assignments {
                    let k = self.kind(e);
                    let n = self.nest(e);
                    self.assign(target, k, n);
                }
                self.stmts(&w.body);
            }
            Stmt::Set(set) => {
                if is_call_to(&set.expr, "namespace")
                    && let (Expr::Var(v), Expr::Call(c)) = (&set.target, &set.expr)
                {
                    self.namespaces.insert(v.id);
                    for arg in &c.args {
                        match arg {
                            CallArg::Kwarg(name, e) => {
                                let k = self.kind(e);
                                raise(&mut self.attrs, name, k, &mut self.changed);
                                let n = self.nest(e);
                                self.check_nest(e, n);
                                raise_nest(&mut self.attr_nests, name, n, &mut self.changed);
                            }
                            _ => self.opaque_namespace = true,
                        }
                    }
                    raise(&mut self.names, v.id, Kind::Unknown, &mut self.changed);
                } else {
                    let k = self.kind(&set.expr);
                    let n = self.nest(&set.expr);
                    self.assign(&set.target, k, n);
                }
            }
            Stmt::SetBlock(b) => {
                if let Some(f) = &b.filter {
                    self.kind(f);
                }
                self.stmts(&b.body);
                self.assign(&b.target, Kind::Scalar, 0);
            }
            Stmt::AutoEscape(a) => {
                self.kind(&a.enabled);
                self.stmts(&a.body);
            }
            Stmt::FilterBlock(f) => {
                self.kind(&f.filter);
                self.stmts(&f.body);
            }
            Stmt::Block(b) => self.stmts(&b.body),
            Stmt::Import(i) => {
                self.kind(&i.expr);
                self.assign(&i.name, Kind::Unknown, 0);
            }
            Stmt::FromImport(i) => {
                self.kind(&i.expr);
                for (name, alias) in &i.names {
                    self.assign(alias.as_ref().unwrap_or(name), Kind::Unknown, 0);
                }
            }
            Stmt::Extends(e) => {
                self.kind(&e.name);
            }
            Stmt::Include(i) => {
                self.kind(&i.name);
            }
            Stmt::Macro(m) => {
                self.macros.insert(m.name);
                self.macro_decl(&m.args, &m.defaults, &m.body);
            }
            Stmt::CallBlock(c) => {
                self.call_args(&c.call.args);
                self.kind(&c.call.expr);
                let m = &c.macro_decl;
                self.macro_decl(&m.args, &m.defaults, &m.body);
            }
            Stmt::Do(d) => {
                self.call_args(&d.call.args);
                self.kind(&d.call.expr);
            }
        }
    }

    fn macro_decl(&mut self, args: &[Expr<'s>], defaults: &[Expr<'s>], body: &[Stmt<'s>]) {
        for d in defaults {
            self.kind(d);
        }
        let nest = self.arg_nest;
        for a in args {
            self.assign(a, Kind::Unknown, nest);
        }
        self.stmts(body);
    }

    /// Records that `target` may be given a value of `kind` nested `nest` levels.
    fn assign(&mut self, target: &Expr<'s>, kind: Kind, nest: usize) {
        self.check_nest(target, nest);
        match target {
            Expr::Var(v) => {
                self.other.insert(v.id);
                raise(&mut self.names, v.id, kind, &mut self.changed);
                raise_nest(&mut self.nests, v.id, nest, &mut self.changed);
            }
            Expr::Tuple(t) => {
                for item in &t.items {
                    self.assign(item, kind, nest);
                }
            }
            Expr::List(l) => {
                for item in &l.items {
                    self.assign(item, kind, nest);
                }
            }
            Expr::GetAttr(g) => {
                self.kind(&g.expr);
                raise(&mut self.attrs, g.name, kind, &mut self.changed);
                raise_nest(&mut self.attr_nests, g.name, nest, &mut self.changed);
            }
            other => {
                self.kind(other);
            }
        }
    }

    fn call_args(&mut self, args: &[CallArg<'s>]) -> Kind {
        let mut k = Kind::Scalar;
        for arg in args {
            let (CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e)) =
                arg;
            k = k.max(self.kind(e));
        }
        k
    }

    /// Reports (in the last pass) a value nested more than [`MAX_BUILT_NESTING`] levels.
    fn check_nest(&mut self, at: &Expr<'s>, nest: usize) {
        if nest > MAX_BUILT_NESTING {
            let message = format!(
                "this may hold lists or maps nested more than {MAX_BUILT_NESTING} levels deep \
                 (a list or map built from itself, such as `{{% set ns.a = [ns.a] %}}` in a \
                 loop, nests without bound)"
            );
            self.find(at.span().start_line, &message);
        }
    }

    fn call_args_nest(&mut self, args: &[CallArg<'s>]) -> usize {
        let mut n = 0;
        for arg in args {
            let (CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e)) =
                arg;
            n = n.max(self.nest(e));
        }
        n
    }

    /// An upper bound of how many list/map levels `e` wraps around the values it is made
    /// of (an input counts 0: its own depth is bounded by the input limits).
    fn nest(&mut self, e: &Expr<'s>) -> usize {
        let n = match e {
            Expr::Var(v) => {
                if self.declared.contains_key(v.id) && !self.names.contains_key(v.id) {
                    0
                } else {
                    self.nests.get(v.id).copied().unwrap_or(0)
                }
            }
            Expr::Const(_) | Expr::UnaryOp(_) | Expr::Compare(_) | Expr::Test(_) => 0,
            Expr::Slice(s) => self.nest(&s.expr),
            Expr::BinOp(b) => match b.op {
                BinOpKind::Concat => 0,
                _ => self.nest(&b.left).max(self.nest(&b.right)),
            },
            Expr::IfExpr(i) => {
                let t = self.nest(&i.true_expr);
                i.false_expr.as_ref().map_or(t, |f| t.max(self.nest(f)))
            }
            Expr::Filter(f) => {
                let operand = f.expr.as_ref().map_or(0, |e| self.nest(e));
                let n = operand.max(self.call_args_nest(&f.args));
                if NESTING_FILTERS.contains(&f.name) { n + 1 } else { n }
            }
            Expr::GetAttr(g) => match &g.expr {
                Expr::Var(v) if self.namespaces.contains(v.id) => {
                    self.attr_nests.get(g.name).copied().unwrap_or(0).max(self.nest(&g.expr))
                }
                other => self.nest(other),
            },
            Expr::GetItem(g) => self.nest(&g.expr),
            Expr::Call(c) => {
                let args = self.call_args_nest(&c.args);
                match &c.expr {
                    Expr::Var(v) if matches!(v.id, "dict" | "namespace") => args + 1,
                    Expr::Var(v) if self.macros.contains(v.id) || v.id == "caller" => 0,
                    other => args.max(self.nest(other)),
                }
            }
            Expr::List(l) => 1 + l.items.iter().map(|i| self.nest(i)).max().unwrap_or(0),
            Expr::Tuple(t) => 1 + t.items.iter().map(|i| self.nest(i)).max().unwrap_or(0),
            Expr::Map(m) => 1 + m.keys.iter().chain(&m.values).map(|i| self.nest(i)).max().unwrap_or(0),
        };
        n.min(MAX_BUILT_NESTING + 1)
    }

    fn var(&self, id: &str) -> Kind {
        match (self.declared.get(id), self.names.get(id)) {
            (Some(d), Some(n)) => (*d).max(*n),
            (Some(k), None) | (None, Some(k)) => *k,
            (None, None) => Kind::Unknown,
        }
    }

    fn find(&mut self, line: u16, message: &str) {
        if self.collect {
            self.findings.push(Finding { line, message: message.to_string() });
        }
    }

    /// The kind of `e`, visiting (and, in the last pass, checking) every sub-expression.
    fn kind(&mut self, e: &Expr<'s>) -> Kind {
        match e {
            Expr::Var(v) => self.var(v.id),
            Expr::Const(c) => match c.value.kind() {
                ValueKind::String
                | ValueKind::Number
                | ValueKind::Bool
                | ValueKind::None
                | ValueKind::Undefined => Kind::Scalar,
                // Folded constants are small (minijinja folds at most 1 KB).
                _ => Kind::Input,
            },
            Expr::Slice(s) => {
                for b in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.kind(b);
                }
                self.kind(&s.expr)
            }
            Expr::UnaryOp(u) => {
                self.kind(&u.expr);
                Kind::Scalar
            }
            Expr::BinOp(b) => {
                let l = self.kind(&b.left);
                let r = self.kind(&b.right);
                let line = b.span().start_line;
                match b.op {
                    BinOpKind::Add => {
                        if l == Kind::Scalar || r == Kind::Scalar {
                            Kind::Scalar
                        } else {
                            if l == Kind::Unknown || r == Kind::Unknown {
                                self.find(
                                    line,
                                    "`+` between two values that may be lists: list \
                                     concatenation can grow without bound (join text with `~`; \
                                     only lists taken directly from inputs may be added)",
                                );
                            }
                            Kind::Unknown
                        }
                    }
                    BinOpKind::Mul => {
                        if l == Kind::Scalar && r == Kind::Scalar {
                            Kind::Scalar
                        } else {
                            Kind::Unknown
                        }
                    }
                    BinOpKind::Concat => {
                        if l == Kind::Unknown || r == Kind::Unknown {
                            self.find(
                                line,
                                "`~` with an operand that may be a list or map built in the \
                                 template: it would be turned into text without a size limit \
                                 (use `| join` or `| string`)",
                            );
                        }
                        Kind::Scalar
                    }
                    BinOpKind::ScAnd | BinOpKind::ScOr => l.max(r),
                    _ => Kind::Scalar,
                }
            }
            Expr::Compare(c) => {
                self.kind(&c.expr);
                for op in &c.ops {
                    self.kind(&op.expr);
                }
                Kind::Scalar
            }
            Expr::IfExpr(i) => {
                self.kind(&i.test_expr);
                let t = self.kind(&i.true_expr);
                let f = i.false_expr.as_ref().map_or(Kind::Scalar, |f| self.kind(f));
                t.max(f)
            }
            Expr::Filter(f) => {
                let operand = f.expr.as_ref().map_or(Kind::Unknown, |e| self.kind(e));
                let args = self.call_args(&f.args);
                if SCALAR_FILTERS.contains(&f.name) {
                    Kind::Scalar
                } else if matches!(f.name, "default" | "d") {
                    operand.max(args)
                } else if SELECTING_FILTERS.contains(&f.name)
                    || (f.name == "map" && f.args.iter().all(|a| matches!(a, CallArg::Kwarg("attribute", _))))
                {
                    operand
                } else {
                    Kind::Unknown
                }
            }
            Expr::Test(t) => {
                self.kind(&t.expr);
                self.call_args(&t.args);
                Kind::Scalar
            }
            Expr::GetAttr(g) => {
                let base = self.kind(&g.expr);
                match &g.expr {
                    Expr::Var(v)
                        if v.id == "loop"
                            && !self.names.contains_key("loop")
                            && LOOP_SCALARS.contains(&g.name) =>
                    {
                        Kind::Scalar
                    }
                    Expr::Var(v)
                        if self.namespaces.contains(v.id)
                            && !self.other.contains(v.id)
                            && !self.declared.contains_key(v.id)
                            && !self.opaque_namespace =>
                    {
                        self.attrs.get(g.name).copied().unwrap_or(Kind::Unknown)
                    }
                    _ => base,
                }
            }
            Expr::GetItem(g) => {
                self.kind(&g.subscript_expr);
                self.kind(&g.expr)
            }
            Expr::Call(c) => {
                self.call_args(&c.args);
                if matches!(&c.expr, Expr::Var(v) if self.macros.contains(v.id) || matches!(v.id, "caller" | "loop"))
                {
                    let n = self.call_args_nest(&c.args);
                    self.check_nest(e, n);
                    if n > self.arg_nest {
                        self.arg_nest = n.min(MAX_BUILT_NESTING + 1);
                        self.changed = true;
                    }
                }
                match &c.expr {
                    // Macros return the text they render.
                    Expr::Var(v)
                        if (self.macros.contains(v.id) || v.id == "caller")
                            && !self.names.contains_key(v.id)
                            && !self.declared.contains_key(v.id) =>
                    {
                        Kind::Scalar
                    }
                    other => {
                        self.kind(other);
                        Kind::Unknown
                    }
                }
            }
            Expr::List(l) => {
                for item in &l.items {
                    self.kind(item);
                }
                Kind::Unknown
            }
            Expr::Tuple(t) => {
                for item in &t.items {
                    self.kind(item);
                }
                Kind::Unknown
            }
            Expr::Map(m) => {
                for item in m.keys.iter().chain(&m.values) {
                    self.kind(item);
                }
                Kind::Unknown
            }
        }
    }
}
