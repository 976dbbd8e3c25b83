//! Token estimates for servers that report no usage.
//!
//! Counts with tiktoken: `cl100k_base` for models known to use it (GPT-4, GPT-3.5), else
//! `o200k_base` (GPT-4o and later; a fair approximation for open models, whose own
//! tokenizers are not available here). Each message adds the chat format's framing tokens.
//! Texts longer than [`EXACT_PREFIX_BYTES`] are counted on that prefix and scaled by length,
//! which bounds the CPU an estimate can take.

use tiktoken_rs::CoreBPE;
use tiktoken_rs::tokenizer::{Tokenizer, get_tokenizer};

use crate::execution::TokenUsage;
use crate::provider::CompletionRequest;

/// Longest prefix of one text counted exactly.
pub(crate) const EXACT_PREFIX_BYTES: usize = 16 * 1024;
/// Framing tokens per chat message (`<|start|>{role}\n ... <|end|>`).
const TOKENS_PER_MESSAGE: u64 = 3;
/// Tokens priming the assistant's reply.
const REPLY_PRIMING_TOKENS: u64 = 3;

fn bpe_for(model: &str) -> &'static CoreBPE {
    match get_tokenizer(model) {
        Some(Tokenizer::Cl100kBase) => tiktoken_rs::cl100k_base_singleton(),
        _ => tiktoken_rs::o200k_base_singleton(),
    }
}

/// Tokens in `text`: exact up to [`EXACT_PREFIX_BYTES`], scaled beyond.
pub(crate) fn count_tokens(bpe: &CoreBPE, text: &str) -> u64 {
    if text.len() <= EXACT_PREFIX_BYTES {
        return bpe.encode_ordinary(text).len() as u64;
    }
    let mut cut = EXACT_PREFIX_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let prefix_tokens = bpe.encode_ordinary(&text[..cut]).len() as u64;
    // tokens(prefix) * len(text) / len(prefix), rounded up, in u128 so it cannot overflow.
    let scaled = (u128::from(prefix_tokens) * text.len() as u128).div_ceil(cut.max(1) as u128);
    u64::try_from(scaled).unwrap_or(u64::MAX)
}

/// Usage estimated from the request's messages and the reply text, marked `estimated`.
pub(crate) fn estimate_usage(request: &CompletionRequest, reply: &str) -> TokenUsage {
    let bpe = bpe_for(&request.model);
    let input = request
        .messages
        .iter()
        .map(|m| TOKENS_PER_MESSAGE.saturating_add(1).saturating_add(count_tokens(bpe, &m.content)))
        .fold(REPLY_PRIMING_TOKENS, u64::saturating_add);
    let output = count_tokens(bpe, reply);
    TokenUsage {
        input,
        output,
        cached: 0,
        reasoning: 0,
        total: input.saturating_add(output),
        estimated: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact_for_short_texts() {
        let bpe = tiktoken_rs::o200k_base_singleton();
        assert_eq!(count_tokens(bpe, ""), 0);
        assert_eq!(count_tokens(bpe, "hello world"), 2);
    }

    #[test]
    fn long_texts_are_scaled_from_a_prefix() {
        let bpe = tiktoken_rs::o200k_base_singleton();
        let unit = "The quick brown fox jumps over the lazy dog. ";
        let text = unit.repeat(4 * EXACT_PREFIX_BYTES / unit.len());
        let estimate = count_tokens(bpe, &text);
        let exact = bpe.encode_ordinary(&text).len() as u64;
        let error = estimate.abs_diff(exact) as f64 / exact as f64;
        assert!(error < 0.02, "estimate {estimate} vs exact {exact}");
    }

    #[test]
    fn multibyte_text_is_cut_on_a_char_boundary() {
        let bpe = tiktoken_rs::o200k_base_singleton();
        let text = "日本語".repeat(EXACT_PREFIX_BYTES);
        assert!(count_tokens(bpe, &text) > 0);
    }

    #[test]
    fn models_pick_their_tokenizer() {
        assert!(std::ptr::eq(bpe_for("gpt-4"), tiktoken_rs::cl100k_base_singleton()));
        assert!(std::ptr::eq(bpe_for("gpt-4o-mini"), tiktoken_rs::o200k_base_singleton()));
        assert!(std::ptr::eq(bpe_for("llama3.2"), tiktoken_rs::o200k_base_singleton()));
    }
}
