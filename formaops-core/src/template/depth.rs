//! A bound on how deeply a template nests, checked on its tokens before anything parses it.
//!
//! minijinja's parser, its code generator, its syntax tree's destructor, and this crate's own
//! analyses ([`super::growth`], undeclared variables) all recurse once per level of the
//! syntax tree. minijinja limits some of that nesting itself (brackets and blocks, about 150
//! levels) but not all of it: a chain of prefix operators (`- - - 1`, `not not x`), an
//! operator chain (`1 + 1 + ...`: the tree is as deep as the chain is long), a chain of
//! filters, attributes, subscripts or calls (`x|abs|abs`, `a.b.c`, `f()()`), an inline
//! `a if b else c if d else ...` and `{% elif %}` chains build trees thousands of levels deep
//! from a few kilobytes of source, and a stack overflow aborts the whole process (it cannot be
//! caught). This module walks the template's tokens (minijinja's own lexer, which does not
//! recurse) and computes an upper bound of the tree's depth; a template with an expression
//! over [`MAX_EXPRESSION_DEPTH`] or blocks nested over [`MAX_BLOCK_DEPTH`] is rejected before
//! it is parsed.
//!
//! The expression bound: every operator token (`+`, `.`, `|`, `not`, `if`, ...) may add one
//! level on the way down, every bracket [`BRACKET_LEVELS`] (the parser goes through every
//! precedence level again inside a bracket), and the parts of a bracket separated by `,`, `:`
//! or `=` are siblings (they do not add up). Blocks: each open `if`, `for`, `macro`, `call`, `filter`,
//! `with`, `autoescape`, `block` or `{% set %}...{% endset %}` adds a level, and so does each
//! `elif` (minijinja nests it inside the `if` before it).

use minijinja::machinery::{Token, tokenize};
use minijinja::syntax::SyntaxConfig;

/// Deepest expression in a template: every operator of a chain (`a + b + c`, `x|f|g`,
/// `a.b.c`, `- - x`) counts one level and every bracket (`(`, `[`, `{`, a call's parentheses)
/// four, so at most 24 brackets nest; the items of a list or the arguments of a call do not
/// add up. Real prompts stay far below it.
pub const MAX_EXPRESSION_DEPTH: usize = 100;

/// Levels of [`MAX_EXPRESSION_DEPTH`] one bracket counts.
const BRACKET_LEVELS: usize = 4;

/// Deepest nesting of blocks (`if`, `for`, `macro`, ...; each `elif` counts one more). A
/// level of blocks costs several times the stack of an expression level; at both limits a
/// template needs well under the 2 MiB stack of a Tokio worker thread.
pub const MAX_BLOCK_DEPTH: usize = 32;

/// Keywords that are operators inside an expression.
const OPERATOR_WORDS: &[&str] = &["not", "and", "or", "is", "in", "if", "else"];

/// Block statements that contain a body up to their `end...` tag.
const BODY_BLOCKS: &[&str] = &["if", "for", "macro", "call", "filter", "with", "autoescape", "block"];

/// The operators and brackets of one bracket level of an expression.
#[derive(Debug, Default)]
struct Group {
    /// Operator tokens in the current part (since the last `,`, `:` or `=`).
    ops: usize,
    /// Depth of the deepest bracket inside the current part.
    inner: usize,
    /// Depth of the deepest part already closed.
    max: usize,
}

impl Group {
    fn end_part(&mut self) {
        self.max = self.depth();
        self.ops = 0;
        self.inner = 0;
    }

    fn depth(&self) -> usize {
        self.max.max(self.ops.saturating_add(self.inner))
    }
}

/// Folds every open bracket into the outermost one; returns the expression's depth bound.
fn finish(groups: &mut Vec<Group>) -> usize {
    while groups.len() > 1 {
        if let Some(g) = groups.pop() {
            let d = g.depth() + 1;
            if let Some(parent) = groups.last_mut() {
                parent.inner = parent.inner.max(d);
            }
        }
    }
    let depth = groups.last().map_or(0, |g| g.depth() + 1);
    groups.clear();
    depth
}

/// A template that nests too deeply: the line where a limit is passed, and which one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TooDeep {
    pub(super) line: u16,
    pub(super) blocks: bool,
}

impl TooDeep {
    pub(super) fn message(self) -> String {
        if self.blocks {
            format!(
                "line {}: blocks are nested more than {MAX_BLOCK_DEPTH} levels deep (every open \
                 `if`, `for`, `macro`, ... and every `elif` counts one level)",
                self.line
            )
        } else {
            format!(
                "line {}: an expression is nested more than {MAX_EXPRESSION_DEPTH} levels deep \
                 (every operator of a chain such as `a + b + c`, `x|f|g`, `a.b.c` or `- - x` \
                 counts one level, every bracket {BRACKET_LEVELS}); split it with `{{% set %}}`",
                self.line
            )
        }
    }
}

/// Checks `source` against [`MAX_EXPRESSION_DEPTH`] and [`MAX_BLOCK_DEPTH`]. Lexical errors end the scan (the parser
/// stops at the same place and reports them), after the part before them was checked.
pub(super) fn check(source: &str) -> Result<(), TooDeep> {
    // Weight of each open body block (an `if` counts one more for each of its `elif`s).
    let mut blocks: Vec<usize> = Vec::new();
    let mut block_depth = 0usize;
    let mut groups: Vec<Group> = Vec::new();
    let mut in_block_tag = false;
    let mut keyword: Option<&str> = None;
    let mut assigns = false;
    let mut line = 1u16;
    let expression = |line| TooDeep { line, blocks: false };
    for token in tokenize(source, false, SyntaxConfig::default()) {
        let Ok((token, span)) = token else { break };
        line = span.start_line;
        match token {
            Token::TemplateData(_) => {}
            Token::VariableStart | Token::BlockStart => {
                groups.clear();
                groups.push(Group::default());
                in_block_tag = matches!(token, Token::BlockStart);
                keyword = None;
                assigns = false;
            }
            Token::VariableEnd | Token::BlockEnd => {
                if finish(&mut groups) > MAX_EXPRESSION_DEPTH {
                    return Err(expression(line));
                }
                if in_block_tag {
                    match keyword {
                        Some(k) if BODY_BLOCKS.contains(&k) || (k == "set" && !assigns) => {
                            blocks.push(1);
                            block_depth += 1;
                        }
                        Some("elif") => {
                            if let Some(top) = blocks.last_mut() {
                                *top += 1;
                                block_depth += 1;
                            }
                        }
                        Some(k) if k.starts_with("end") => {
                            block_depth = block_depth.saturating_sub(blocks.pop().unwrap_or(0));
                        }
                        _ => {}
                    }
                    if block_depth > MAX_BLOCK_DEPTH {
                        return Err(TooDeep { line, blocks: true });
                    }
                }
                in_block_tag = false;
            }
            Token::ParenOpen | Token::BracketOpen | Token::BraceOpen => {
                // The bracket's own level is added when it closes.
                if let Some(g) = groups.last_mut() {
                    g.ops += BRACKET_LEVELS - 1;
                }
                groups.push(Group::default());
                if groups.len().saturating_mul(BRACKET_LEVELS) > MAX_EXPRESSION_DEPTH + BRACKET_LEVELS {
                    return Err(expression(line));
                }
            }
            Token::ParenClose | Token::BracketClose | Token::BraceClose => {
                if groups.len() > 1
                    && let Some(g) = groups.pop()
                    && let Some(parent) = groups.last_mut()
                {
                    parent.inner = parent.inner.max(g.depth() + 1);
                }
            }
            Token::Comma | Token::Colon | Token::Assign => {
                if groups.len() == 1 && matches!(token, Token::Assign) {
                    assigns = true;
                }
                if let Some(g) = groups.last_mut() {
                    g.end_part();
                }
            }
            Token::Ident(name) => {
                if in_block_tag && keyword.is_none() {
                    keyword = Some(name);
                } else if OPERATOR_WORDS.contains(&name)
                    && let Some(g) = groups.last_mut()
                {
                    g.ops += 1;
                }
            }
            Token::Str(_) | Token::String(_) | Token::Int(_) | Token::Int128(_) | Token::Float(_) => {}
            // Every other token is an operator.
            _ => {
                if let Some(g) = groups.last_mut() {
                    g.ops += 1;
                }
            }
        }
    }
    if finish(&mut groups) > MAX_EXPRESSION_DEPTH {
        return Err(expression(line));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(source: &str) -> bool {
        check(source).is_ok()
    }

    #[test]
    fn chains_count_one_level_per_operator() {
        let max = MAX_EXPRESSION_DEPTH;
        assert!(depth_ok(&format!("{{{{ {}1 }}}}", "-".repeat(max - 1))));
        assert!(!depth_ok(&format!("{{{{ {}1 }}}}", "-".repeat(max + 1))));
        assert!(depth_ok(&format!("{{{{ 1{} }}}}", " + 1".repeat(max - 1))));
        assert!(!depth_ok(&format!("{{{{ 1{} }}}}", " + 1".repeat(max))));
        assert!(!depth_ok(&format!("{{{{ x{} }}}}", "|abs".repeat(max))));
        assert!(!depth_ok(&format!("{{{{ x{} }}}}", ".a".repeat(max))));
        assert!(!depth_ok(&format!("{{{{ x{} }}}}", "[0]".repeat(max))));
        assert!(!depth_ok(&format!("{{{{ f{} }}}}", "()".repeat(max))));
        assert!(!depth_ok(&format!("{{{{ {}x }}}}", "not ".repeat(max))));
        assert!(!depth_ok(&format!("{{{{ 1{} }}}}", " if x else 1".repeat(max))));
    }

    #[test]
    fn siblings_do_not_add_up() {
        let args = vec!["a ~ b ~ c"; 500].join(", ");
        assert!(depth_ok(&format!("{{{{ f({args}) }}}} {{{{ [{args}] }}}}")));
        let map = (0..500).map(|i| format!("'k{i}': {i} + 1")).collect::<Vec<_>>().join(", ");
        assert!(depth_ok(&format!("{{% set m = {{{map}}} %}}{{{{ m }}}}")));
        // Many short expressions one after another.
        assert!(depth_ok(&"{{ a + b + c }}".repeat(1000)));
    }

    #[test]
    fn brackets_and_blocks_nest() {
        let parens = |n: usize| format!("{{{{ {}1{} }}}}", "(".repeat(n), ")".repeat(n));
        let brackets = MAX_EXPRESSION_DEPTH / BRACKET_LEVELS;
        assert!(depth_ok(&parens(brackets - 1)));
        assert!(!depth_ok(&parens(brackets + 1)));
        assert!(!depth_ok(&parens(MAX_EXPRESSION_DEPTH + 1)));
        assert!(!depth_ok(&parens(20_000)));
        assert!(depth_ok(&format!("{{{{ {}1{} }}}}", "[".repeat(brackets - 1), "]".repeat(brackets - 1))));
        let blocks = MAX_BLOCK_DEPTH + 1;
        for (open, close) in [("{% if a %}", "{% endif %}"), ("{% set a %}", "{% endset %}")] {
            assert!(!depth_ok(&format!("{}x{}", open.repeat(blocks), close.repeat(blocks))));
            let ok = MAX_BLOCK_DEPTH;
            assert!(depth_ok(&format!("{}x{}", open.repeat(ok), close.repeat(ok))));
        }
        assert!(!depth_ok(&format!("{{% if a %}}{}{{% endif %}}", "{% elif b %}".repeat(blocks))));
        // Closed blocks do not count.
        assert!(depth_ok(&"{% if a %}x{% elif b %}y{% endif %}{% for i in x %}{% endfor %}".repeat(500)));
        assert!(depth_ok(&"{% set a = 1 %}".repeat(500)));
    }

    #[test]
    fn the_line_and_the_limit_are_named() {
        let t = format!("a\nb\n{{{{ {}1 }}}}", "-".repeat(MAX_EXPRESSION_DEPTH + 1));
        let e = check(&t).expect_err("too deep");
        assert_eq!(e, TooDeep { line: 3, blocks: false });
        assert!(e.message().contains(&MAX_EXPRESSION_DEPTH.to_string()), "{}", e.message());
        let t = "{% for x in y %}".repeat(MAX_BLOCK_DEPTH + 1);
        let e = check(&t).expect_err("too deep");
        assert!(e.blocks && e.message().contains(&MAX_BLOCK_DEPTH.to_string()), "{}", e.message());
    }

    #[test]
    fn lexical_errors_stop_the_scan_after_the_prefix() {
        let t = format!("{{{{ {}1 }}}} {{{{ 'unterminated", "-".repeat(MAX_EXPRESSION_DEPTH + 1));
        assert!(!depth_ok(&t));
        let t = format!("{{{{ {}1", "-".repeat(MAX_EXPRESSION_DEPTH + 1));
        assert!(!depth_ok(&t));
        assert!(depth_ok("{{ 'unterminated"));
    }
}
