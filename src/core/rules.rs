//! Which leaves are encrypted: the six selection rules over every key on the path
//! and the comment stack (spec §3.1, §3.2).

use super::error::CoreError;
use super::metadata::SelectionRule;
use super::secret::Text;
use regex_automata::meta;
use regex_automata::util::syntax;
use regex_automata::MatchKind;

/// A key or comment pattern: an unanchored search over bytes, configured exactly as
/// `regex::bytes::Regex` configures the same engine, except that no fully compiled DFA
/// is built. That DFA is on only because the log filter's crate enables it for the whole
/// build; for a one-line pattern its construction cost ~0.6M instructions, a sixth of
/// decrypting a small file, while the lazy DFA matches key names just as fast.
#[derive(Debug)]
pub struct Regex(meta::Regex);

impl Regex {
    /// Compiles `pattern`; the error is the syntax error's own text.
    pub fn new(pattern: &str) -> Result<Regex, String> {
        meta::Builder::new()
            .configure(
                meta::Config::new()
                    .match_kind(MatchKind::LeftmostFirst)
                    .utf8_empty(false)
                    .dfa(false),
            )
            .syntax(syntax::Config::new().utf8(false))
            .build(pattern)
            .map(Regex)
            .map_err(|e| match e.syntax_error() {
                Some(syntax) => syntax.to_string(),
                None => e.to_string(),
            })
    }

    /// Whether the pattern matches anywhere in `haystack`.
    pub fn is_match(&self, haystack: &[u8]) -> bool {
        self.0.is_match(haystack)
    }
}

/// A compiled selection rule.
#[derive(Debug)]
pub enum Rule {
    /// Not encrypted if any path key ends with the suffix.
    UnencryptedSuffix(String),
    /// Encrypted only if some path key ends with the suffix.
    EncryptedSuffix(String),
    /// Not encrypted if any path key matches.
    UnencryptedRegex(Regex),
    /// Encrypted only if some path key matches.
    EncryptedRegex(Regex),
    /// Not encrypted if any active comment matches.
    UnencryptedCommentRegex(Regex),
    /// Encrypted only if some active comment (not the judged comment itself) matches.
    EncryptedCommentRegex(Regex),
}

impl Rule {
    /// Compiles a rule. Regexes are unanchored searches (§3.1); Rust's `regex` is
    /// close to Go RE2 syntax.
    pub fn compile(rule: &SelectionRule) -> Result<Rule, CoreError> {
        let re = |s: &str| {
            Regex::new(s).map_err(|e| CoreError::InvalidRule {
                rule: rule.key(),
                reason: e,
            })
        };
        Ok(match rule {
            SelectionRule::UnencryptedSuffix(s) => Rule::UnencryptedSuffix(s.clone()),
            SelectionRule::EncryptedSuffix(s) => Rule::EncryptedSuffix(s.clone()),
            SelectionRule::UnencryptedRegex(s) => Rule::UnencryptedRegex(re(s)?),
            SelectionRule::EncryptedRegex(s) => Rule::EncryptedRegex(re(s)?),
            SelectionRule::UnencryptedCommentRegex(s) => Rule::UnencryptedCommentRegex(re(s)?),
            SelectionRule::EncryptedCommentRegex(s) => Rule::EncryptedCommentRegex(re(s)?),
        })
    }

    /// Whether a leaf at `path` with the given comment stack is encrypted. When
    /// `is_comment`, the judged comment is the last entry of the top list (§3.2).
    pub fn should_encrypt(&self, path: &[String], stack: &[Vec<Text>], is_comment: bool) -> bool {
        match self {
            // §3.1: every key on the path counts, not only the leaf key.
            Rule::UnencryptedSuffix(s) => !path.iter().any(|k| k.ends_with(s.as_str())),
            Rule::EncryptedSuffix(s) => path.iter().any(|k| k.ends_with(s.as_str())),
            Rule::UnencryptedRegex(re) => !path.iter().any(|k| re.is_match(k.as_bytes())),
            Rule::EncryptedRegex(re) => path.iter().any(|k| re.is_match(k.as_bytes())),
            // §3.2: any comment anywhere on the stack; a matching comment itself stays clear.
            Rule::UnencryptedCommentRegex(re) => !stack
                .iter()
                .flatten()
                .any(|c| re.is_match(c.expose_secret())),
            Rule::EncryptedCommentRegex(re) => {
                let last_level = stack.len().saturating_sub(1);
                stack.iter().enumerate().any(|(i, level)| {
                    level.iter().enumerate().any(|(j, c)| {
                        // §3.2: the comment being judged is skipped.
                        let is_self = is_comment && i == last_level && j + 1 == level.len();
                        !is_self && re.is_match(c.expose_secret())
                    })
                })
            }
        }
    }

    /// True for the comment-regex rules, whose ciphertext check applies (§3.2).
    pub fn unencrypted_comment_regex(&self) -> Option<&Regex> {
        match self {
            Rule::UnencryptedCommentRegex(re) => Some(re),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn suffixes_and_regexes_look_at_every_key_on_the_path() {
        let r = Rule::compile(&SelectionRule::default()).unwrap();
        assert!(r.should_encrypt(&path(&["a", "b"]), &[], false));
        assert!(!r.should_encrypt(&path(&["secrets_unencrypted", "b"]), &[], false));
        let r = Rule::compile(&SelectionRule::EncryptedRegex("^data$".into())).unwrap();
        assert!(r.should_encrypt(&path(&["data", "x", "y"]), &[], false));
        assert!(!r.should_encrypt(&path(&["metadata", "x"]), &[], false));
        // Unanchored search.
        let r = Rule::compile(&SelectionRule::EncryptedRegex("ta".into())).unwrap();
        assert!(r.should_encrypt(&path(&["metadata"]), &[], false));
        assert!(Rule::compile(&SelectionRule::EncryptedRegex("(".into())).is_err());
    }

    #[test]
    fn comment_regexes_use_the_stack_and_skip_the_judged_comment() {
        let marker = vec![vec![Text::from(" X marker")]];
        let r = Rule::compile(&SelectionRule::EncryptedCommentRegex("X".into())).unwrap();
        assert!(r.should_encrypt(&[], &marker, false));
        assert!(!r.should_encrypt(&[], &marker, true));
        let two = vec![vec![Text::from(" X marker"), Text::from(" second")]];
        assert!(r.should_encrypt(&[], &two, true));
        let r = Rule::compile(&SelectionRule::UnencryptedCommentRegex("X".into())).unwrap();
        assert!(!r.should_encrypt(&[], &marker, true));
        assert!(!r.should_encrypt(&path(&["a"]), &[vec![], marker[0].clone()], false));
        assert!(r.should_encrypt(&path(&["a"]), &[], false));
    }
}
