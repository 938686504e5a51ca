//! YAML input: granit-parser events → the document tree, with go-yaml v3 resolution
//! (spec §1.6) and sops 3.11's comment placement (spec §3.4).
//!
//! The events are folded into a small node tree while a stack of open containers is
//! kept; each comment is placed the moment it arrives, from its line, column and the
//! open containers, which is how go-yaml attaches head/line/foot comments.

use super::resolve::{self, Resolved};
use crate::core::formats::FormatError;
use crate::core::secret::Text;
use crate::core::tree::{MapEntry, Mapping, SeqEntry, Sequence, Value};
use base64::Engine;
use granit_parser::{Event, Parser, Placement, ScalarStyle, Span, StructureStyle};
use std::collections::{HashMap, HashSet, VecDeque};
use zeroize::Zeroizing;

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 256;
/// Most nodes a document may expand to through aliases (a YAML bomb stops here).
pub const MAX_NODES: usize = 1_000_000;
/// Most aliases (`*name`) an input may use.
pub const MAX_ALIASES: usize = 100_000;

/// How many times its own size an input may weigh once parsed (see [`expansion_budget`]).
///
/// Without aliases a tree weighs at most 17 times its input (every node takes at least
/// one byte of input, `{a,b}`, and weighs [`NODE_WEIGHT`] plus its text), and real files
/// weigh 2 to 4 times their size (a `key: value` line is about 8 bytes a node). 64 leaves
/// room for the anchors and merge keys people write (a block reused a dozen times), while
/// a bomb, whose whole point is to grow by orders of magnitude, stops early.
pub const EXPANSION_FACTOR: usize = 64;
/// The weight any input may reach, however small: a 200-byte file whose anchor is used
/// twenty times is not a bomb. 256 KiB of weight is at most 16,384 nodes, a few MiB.
pub const MIN_EXPANSION_BUDGET: usize = 256 * 1024;
/// What a node weighs on top of its text: empty scalars must not be free, and the
/// tree's bookkeeping (enum, vector slot, line) is several words a node anyway.
pub const NODE_WEIGHT: usize = 16;

/// The most a parse of `input_len` bytes may weigh: scalar and comment text plus
/// [`NODE_WEIGHT`] a node, counting every copy an alias or an anchor makes.
///
/// Guarantees: memory of a parse grows with its input, whatever aliases do (a 2.7 KB
/// alias bomb used to take 330 MB below [`MAX_NODES`]). Callers that run parses side
/// by side (the render engine) reserve this much per file to bound their total.
pub fn expansion_budget(input_len: usize) -> usize {
    input_len
        .saturating_mul(EXPANSION_FACTOR)
        .max(MIN_EXPANSION_BUDGET)
}

/// Scalar text and comments of the input are plaintext: wiped when dropped.
type Secret = Zeroizing<String>;

/// Hands a wiped string's buffer over (to a [`Text`], which wipes it in turn).
fn take(mut s: Secret) -> String {
    std::mem::take(&mut *s)
}

#[derive(Clone)]
struct Scalar {
    text: Secret,
    style: ScalarStyle,
    /// Handle and suffix; boxed because tags are rare and every pair holds two
    /// scalars (a 10,000-key file's node tree is 0.9 MB smaller).
    tag: Option<Box<(String, String)>>,
    line: usize,
}

#[derive(Clone)]
enum Node {
    Scalar(Scalar),
    Map(MapNode),
    Seq(SeqNode),
}

#[derive(Clone)]
enum MItem {
    Pair {
        key: Scalar,
        value: Node,
        line: usize,
    },
    Comment(Secret),
}

#[derive(Clone)]
struct MapNode {
    items: Vec<MItem>,
    flow: bool,
    end_line: usize,
}

#[derive(Clone)]
enum SItem {
    Elem { node: Node, line: usize },
    Comment(Secret),
}

#[derive(Clone)]
struct SeqNode {
    items: Vec<SItem>,
    flow: bool,
    end_line: usize,
}

impl Node {
    fn line(&self) -> usize {
        match self {
            Node::Scalar(s) => s.line,
            Node::Map(m) => m
                .items
                .iter()
                .find_map(|i| {
                    if let MItem::Pair { line, .. } = i {
                        Some(*line)
                    } else {
                        None
                    }
                })
                .unwrap_or(m.end_line),
            Node::Seq(s) => s
                .items
                .iter()
                .find_map(|i| {
                    if let SItem::Elem { line, .. } = i {
                        Some(*line)
                    } else {
                        None
                    }
                })
                .unwrap_or(s.end_line),
        }
    }
}

enum FrameKind {
    Map {
        node: MapNode,
        pending_key: Option<Scalar>,
    },
    Seq {
        node: SeqNode,
        compact: bool,
    },
}

struct Frame {
    kind: FrameKind,
    col: usize,
    anchor: usize,
    /// Comments that go after the item currently being built.
    after: Vec<Secret>,
}

impl Frame {
    fn flow(&self) -> bool {
        match &self.kind {
            FrameKind::Map { node, .. } => node.flow,
            FrameKind::Seq { node, .. } => node.flow,
        }
    }
}

fn perr(line: usize, reason: impl Into<String>) -> FormatError {
    FormatError::Parse {
        format: "yaml",
        line: Some(line),
        reason: reason.into(),
    }
}

struct Builder<'s> {
    src: &'s str,
    /// The input's lines, split only when a block sequence needs its dash column
    /// (splitting every input cost 2% of decrypting a large file).
    src_lines: std::cell::OnceCell<Vec<&'s str>>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    held: Vec<Secret>,
    nodes: usize,
    /// What the tree and the anchors' copies weigh so far (see [`expansion_budget`]).
    weight: usize,
    max_weight: usize,
    input_len: usize,
    aliases: usize,
    docs: Vec<(Option<Node>, Vec<Secret>)>,
    root: Option<Node>,
    in_doc: bool,
}

impl Builder<'_> {
    /// Adds `n` nodes weighing `weight` to the parse, or refuses them past a limit.
    /// Called before the nodes are built or copied, so a refused copy costs nothing.
    fn count(&mut self, n: usize, weight: usize, line: usize) -> Result<(), FormatError> {
        self.nodes = self.nodes.saturating_add(n);
        self.weight = self.weight.saturating_add(weight);
        if self.nodes > MAX_NODES {
            return Err(FormatError::Limit {
                format: "yaml",
                reason: format!("more than {MAX_NODES} nodes after alias expansion (near line {line}); is this a YAML bomb?"),
            });
        }
        if self.weight > self.max_weight {
            return Err(FormatError::Limit {
                format: "yaml",
                reason: format!(
                    "more than {} bytes after alias expansion (near line {line}; the limit is \
                     {EXPANSION_FACTOR} times the input's {} bytes, at least \
                     {MIN_EXPANSION_BUDGET}); is this a YAML bomb?",
                    self.max_weight, self.input_len
                ),
            });
        }
        Ok(())
    }

    /// Keeps a copy of an anchored node for its aliases; the copy is charged like any
    /// other node (nested anchors copy their contents once per level).
    fn anchor(&mut self, id: usize, node: &Node, line: usize) -> Result<(), FormatError> {
        let (_, weight) = measure(node);
        self.count(0, weight, line)?;
        self.anchors.insert(id, node.clone());
        Ok(())
    }

    /// The column of the `-` of a block sequence whose first item starts at (line, col).
    fn dash_col(&self, line: usize, col: usize) -> usize {
        let text = self
            .src_lines
            .get_or_init(|| self.src.split('\n').collect())
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or("");
        let chars: Vec<char> = text.chars().collect();
        let mut c = col.min(chars.len());
        while c > 0 {
            c -= 1;
            if chars[c] == '-' {
                return c;
            }
        }
        col
    }

    fn start(&mut self, kind: FrameKind, span: &Span, anchor: usize) -> Result<(), FormatError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(FormatError::Limit {
                format: "yaml",
                reason: format!(
                    "nesting deeper than {MAX_DEPTH} levels at line {}",
                    span.start.line()
                ),
            });
        }
        self.count(1, NODE_WEIGHT, span.start.line())?;
        let mut frame = Frame {
            col: span.start.col(),
            kind,
            anchor,
            after: Vec::new(),
        };
        // A mapping that is a sequence item counts from its dash: go-yaml attaches a
        // comment at the dash column after it to the mapping (§3.4).
        if let (FrameKind::Map { node, .. }, Some(parent)) = (&frame.kind, self.stack.last()) {
            if !node.flow && matches!(parent.kind, FrameKind::Seq { .. }) && !parent.flow() {
                frame.col = parent.col;
            }
        }
        if let FrameKind::Seq { node, compact } = &mut frame.kind {
            if !node.flow {
                frame.col = self.dash_col(span.start.line(), span.start.col());
                // A compact sequence sits at its parent mapping's column (§3.4).
                *compact = matches!(self.stack.last(), Some(Frame { kind: FrameKind::Map { .. }, col, .. }) if *col == frame.col);
            }
        }
        // Comments held between `key:` and this block belong to it (§3.4).
        let held = std::mem::take(&mut self.held);
        match &mut frame.kind {
            FrameKind::Map { node, .. } => node.items.extend(held.into_iter().map(MItem::Comment)),
            FrameKind::Seq { node, .. } => node.items.extend(held.into_iter().map(SItem::Comment)),
        }
        self.stack.push(frame);
        Ok(())
    }

    fn finish_container(&mut self, end_line: usize) -> Result<(), FormatError> {
        let frame = self.stack.pop().expect("a container is open");
        let node = match frame.kind {
            FrameKind::Map {
                mut node,
                pending_key,
            } => {
                if let Some(key) = pending_key {
                    // `key:` with nothing after it at the end of a flow mapping: null value.
                    node.items.push(MItem::Pair {
                        line: key.line,
                        key,
                        value: Node::Scalar(Scalar {
                            text: Secret::default(),
                            style: ScalarStyle::Plain,
                            tag: None,
                            line: end_line,
                        }),
                    });
                }
                if node.flow {
                    // Full-line comments after the last item of a flow collection are lost.
                    while matches!(node.items.last(), Some(MItem::Comment(_))) {
                        node.items.pop();
                    }
                }
                node.items
                    .extend(frame.after.into_iter().map(MItem::Comment));
                node.end_line = end_line;
                Node::Map(node)
            }
            FrameKind::Seq { mut node, .. } => {
                if node.flow {
                    while matches!(node.items.last(), Some(SItem::Comment(_))) {
                        node.items.pop();
                    }
                }
                node.items
                    .extend(frame.after.into_iter().map(SItem::Comment));
                node.end_line = end_line;
                Node::Seq(node)
            }
        };
        if frame.anchor != 0 {
            self.anchor(frame.anchor, &node, end_line)?;
        }
        self.attach(node)
    }

    fn attach(&mut self, node: Node) -> Result<(), FormatError> {
        let Some(top) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        let after = std::mem::take(&mut top.after);
        match &mut top.kind {
            FrameKind::Map {
                node: map,
                pending_key,
            } => match pending_key.take() {
                None => match node {
                    Node::Scalar(s) => {
                        *pending_key = Some(s);
                        top.after = after;
                    }
                    other => {
                        return Err(perr(other.line(), "complex mapping keys are not supported"))
                    }
                },
                Some(key) => {
                    let held = std::mem::take(&mut self.held);
                    map.items.extend(held.into_iter().map(MItem::Comment));
                    map.items.push(MItem::Pair {
                        line: key.line,
                        key,
                        value: node,
                    });
                    map.items.extend(after.into_iter().map(MItem::Comment));
                }
            },
            FrameKind::Seq { node: seq, .. } => {
                let line = node.line();
                seq.items.push(SItem::Elem { node, line });
                seq.items.extend(after.into_iter().map(SItem::Comment));
            }
        }
        Ok(())
    }

    fn full_line_comment(&mut self, text: Secret, col: usize, next_closes_top: bool) {
        if self.stack.is_empty() {
            match &mut self.root {
                // A foot comment after the root closed: end of the top-level branch.
                Some(Node::Map(m)) if self.in_doc => m.items.push(MItem::Comment(text)),
                _ => self.held.push(text),
            }
            return;
        }
        // Inside a flow collection a comment goes before the next item of that collection;
        // with no next item it is lost (go-yaml + sops 3.11, seen with `d: {\n # c\n}`).
        if let Some(frame) = self.stack.last_mut().filter(|f| f.flow()) {
            match &mut frame.kind {
                FrameKind::Map { node, .. } => node.items.push(MItem::Comment(text)),
                FrameKind::Seq { node, .. } => node.items.push(SItem::Comment(text)),
            }
            return;
        }
        let top = self.stack.len() - 1;
        let mut target = None;
        for i in (0..self.stack.len()).rev() {
            let f = &self.stack[i];
            if f.flow() || f.col > col {
                continue;
            }
            if let FrameKind::Seq { compact: true, .. } = f.kind {
                // After the last item of a compact sequence, a comment at the parent's
                // column belongs to the parent (§3.4).
                if i == top && f.col == col && next_closes_top {
                    continue;
                }
            }
            target = Some(i);
            break;
        }
        let Some(i) = target else {
            self.stack[0].after.push(text);
            return;
        };
        let frame = &mut self.stack[i];
        if i == top {
            match &mut frame.kind {
                FrameKind::Map {
                    pending_key: Some(_),
                    ..
                } => {
                    if col > frame.col {
                        self.held.push(text);
                    } else {
                        frame.after.push(text);
                    }
                }
                FrameKind::Map { node, .. } => node.items.push(MItem::Comment(text)),
                FrameKind::Seq { node, .. } => node.items.push(SItem::Comment(text)),
            }
        } else {
            frame.after.push(text);
        }
    }

    fn trailing_comment(&mut self, text: Secret, line: usize) {
        let Some(top) = self.stack.last_mut() else {
            self.held.push(text);
            return;
        };
        match &mut top.kind {
            FrameKind::Map { node, pending_key } => {
                if pending_key.as_ref().is_some_and(|k| k.line == line) {
                    node.items.push(MItem::Comment(text));
                    return;
                }
                if let Some(pos) = node
                    .items
                    .iter()
                    .rposition(|i| matches!(i, MItem::Pair { .. }))
                {
                    if let MItem::Pair { line: l, value, .. } = &mut node.items[pos] {
                        if *l == line {
                            // After a flow collection used as a value: inside it, first.
                            match value {
                                Node::Map(m) if m.flow && m.end_line == line => {
                                    m.items.insert(0, MItem::Comment(text))
                                }
                                Node::Seq(s) if s.flow && s.end_line == line => {
                                    s.items.insert(0, SItem::Comment(text))
                                }
                                _ => node.items.insert(pos, MItem::Comment(text)),
                            }
                            return;
                        }
                    }
                }
                top.after.push(text);
            }
            FrameKind::Seq { node, .. } => {
                if let Some(pos) = node
                    .items
                    .iter()
                    .rposition(|i| matches!(i, SItem::Elem { .. }))
                {
                    if let SItem::Elem { line: l, .. } = &node.items[pos] {
                        if *l == line {
                            node.items.insert(pos, SItem::Comment(text));
                            return;
                        }
                    }
                }
                top.after.push(text);
            }
        }
    }
}

/// Parses a YAML stream into documents.
pub fn parse_documents(input: &[u8]) -> Result<Vec<Mapping>, FormatError> {
    let src = std::str::from_utf8(input).map_err(|e| {
        perr(
            line_of(input, e.valid_up_to()),
            "the input is not valid UTF-8",
        )
    })?;
    let fixed = if src.contains("\\'") {
        quote_escapes_for_yaml12(src)?
    } else {
        None
    };
    let src: &str = fixed.as_ref().map_or(src, |t| t.as_str());
    let mut events = Events {
        parser: Parser::new_from_str(src),
        src,
        ahead: VecDeque::new(),
        done: false,
    };
    let mut b = Builder {
        src,
        src_lines: std::cell::OnceCell::new(),
        stack: Vec::new(),
        anchors: HashMap::new(),
        held: Vec::new(),
        nodes: 0,
        weight: 0,
        max_weight: expansion_budget(input.len()),
        input_len: input.len(),
        aliases: 0,
        docs: Vec::new(),
        root: None,
        in_doc: false,
    };
    while let Some((ev, span)) = events.next()? {
        // A comment's placement depends on whether the next node closes a container.
        let closes = matches!(ev, Event::Comment(_, p) if p != Placement::Right)
            && events.next_is_end_of_top()?;
        if let Err(e) = b.step(ev, &span, closes) {
            // A syntax error anywhere in the input is reported before a structural one,
            // as when every event was read first.
            while events.next()?.is_some() {}
            return Err(e);
        }
    }
    if b.docs.is_empty() {
        // sops: an empty file is exit 92; whitespace or comments only is go-yaml's EOF
        // error, exit 2 (seen in sops 3.11).
        if input.is_empty() {
            return Err(FormatError::NoDocuments);
        }
        return Err(perr(
            line_of(input, input.len()),
            "no YAML document: the input holds only whitespace or comments",
        ));
    }
    let mut out = Vec::with_capacity(b.docs.len());
    let held_last = std::mem::take(&mut b.held);
    let n = b.docs.len();
    for (i, (root, held)) in b.docs.into_iter().enumerate() {
        let mut m = match root {
            // sops' go-yaml unmarshal that refuses duplicates reads the first document only.
            Some(Node::Map(m)) => convert_map(m, i == 0)?,
            Some(Node::Seq(s)) => {
                return Err(perr(
                    s.end_line,
                    "the top level of a document must be a mapping, not a sequence",
                ))
            }
            Some(Node::Scalar(s)) => {
                if resolve::resolve_plain(&s.text) == Resolved::Null
                    && s.style == ScalarStyle::Plain
                    && s.tag.is_none()
                {
                    Mapping::new()
                } else {
                    return Err(perr(
                        s.line,
                        "the top level of a document must be a mapping, not a scalar",
                    ));
                }
            }
            None => Mapping::new(),
        };
        m.entries.extend(
            held.into_iter()
                .map(|c| MapEntry::Comment(Text::from(take(c)))),
        );
        if i + 1 == n {
            m.entries.extend(
                held_last
                    .iter()
                    .cloned()
                    .map(|c| MapEntry::Comment(Text::from(take(c)))),
            );
        }
        out.push(m);
    }
    Ok(out)
}

impl Builder<'_> {
    /// Folds one event into the tree. `closes`: for a comment, whether the next
    /// non-comment event ends a container.
    fn step(&mut self, ev: Event<'_>, span: &Span, closes: bool) -> Result<(), FormatError> {
        let line = span.start.line();
        match &ev {
            Event::StreamStart | Event::StreamEnd | Event::Anchor(..) => {}
            Event::DocumentStart(..) => {
                self.in_doc = true;
                self.root = None;
            }
            Event::DocumentEnd => {
                let root = self.root.take();
                let held = std::mem::take(&mut self.held);
                self.docs.push((root, held));
                self.in_doc = false;
            }
            Event::Comment(text, placement) => {
                self.count(0, text.len() + NODE_WEIGHT, line)?;
                let text = Secret::new(text.to_string());
                if *placement == Placement::Right {
                    self.trailing_comment(text, line);
                } else if !self.in_doc && self.stack.is_empty() {
                    // Between documents: the foot of the previous one, or the head of the next.
                    match self.docs.last_mut() {
                        Some((Some(Node::Map(m)), _)) => m.items.push(MItem::Comment(text)),
                        _ => self.held.push(text),
                    }
                } else {
                    self.full_line_comment(text, span.start.col(), closes);
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, text.len() + NODE_WEIGHT, line)?;
                let text = match style {
                    // U+2028 and U+2029 both start with the byte E2: a byte search
                    // first (a char search decoded every scalar of a large file).
                    ScalarStyle::SingleQuoted | ScalarStyle::Plain
                        if text.as_bytes().contains(&0xE2)
                            && text.contains(['\u{2028}', '\u{2029}']) =>
                    {
                        fold_unicode_breaks(text)
                    }
                    _ => Secret::new(text.to_string()),
                };
                let node = Node::Scalar(Scalar {
                    text,
                    style: *style,
                    tag: tag
                        .as_ref()
                        .map(|t| Box::new((t.handle().to_string(), t.suffix().to_string()))),
                    line,
                });
                if *anchor != 0 {
                    self.anchor(*anchor, &node, line)?;
                }
                self.attach(node)?;
            }
            Event::Alias(id) => {
                self.aliases += 1;
                if self.aliases > MAX_ALIASES {
                    return Err(FormatError::Limit {
                        format: "yaml",
                        reason: format!("more than {MAX_ALIASES} aliases (at line {line})"),
                    });
                }
                let anchored = self
                    .anchors
                    .get(id)
                    .ok_or_else(|| perr(line, "alias to an unknown anchor"))?;
                // Measured before it is copied: a refused expansion allocates nothing.
                let (nodes, weight) = measure(anchored);
                self.count(nodes, weight, line)?;
                let node = self.anchors[id].clone();
                self.attach(node)?;
            }
            Event::MappingStart(style, anchor, _) => {
                let node = MapNode {
                    items: Vec::new(),
                    flow: *style == StructureStyle::Flow,
                    end_line: line,
                };
                self.start(
                    FrameKind::Map {
                        node,
                        pending_key: None,
                    },
                    span,
                    *anchor,
                )?;
            }
            Event::SequenceStart(style, anchor, _) => {
                let node = SeqNode {
                    items: Vec::new(),
                    flow: *style == StructureStyle::Flow,
                    end_line: line,
                };
                self.start(
                    FrameKind::Seq {
                        node,
                        compact: false,
                    },
                    span,
                    *anchor,
                )?;
            }
            Event::MappingEnd | Event::SequenceEnd => self.finish_container(line)?,
            _ => {}
        }
        Ok(())
    }
}

/// The parser's events, read one at a time with a lookahead over comments (keeping
/// every event of a large file in memory first cost a quarter of its decryption time
/// in allocation and page faults).
struct Events<'s, P> {
    parser: P,
    src: &'s str,
    ahead: VecDeque<(Event<'s>, Span)>,
    done: bool,
}

impl<'s, P> Events<'s, P>
where
    P: Iterator<Item = Result<(Event<'s>, Span), granit_parser::ScanError>>,
{
    /// The next event from the parser, checked for YAML 1.1 differences.
    fn pull(&mut self) -> Result<Option<(Event<'s>, Span)>, FormatError> {
        if self.done {
            return Ok(None);
        }
        let Some(r) = self.parser.next() else {
            self.done = true;
            return Ok(None);
        };
        let (ev, span) = r.map_err(|e| match e.kind() {
            // The parser's own nesting guard (flow and block) is our depth limit too.
            granit_parser::ErrorKind::RecursionLimitExceeded => FormatError::Limit {
                format: "yaml",
                reason: format!(
                    "nesting deeper than the parser allows at line {}",
                    e.marker().line()
                ),
            },
            _ => perr(e.marker().line(), e.info().to_string()),
        })?;
        check_yaml11(self.src, &ev, &span)?;
        if matches!(ev, Event::StreamEnd) {
            self.done = true;
        }
        Ok(Some((ev, span)))
    }

    fn next(&mut self) -> Result<Option<(Event<'s>, Span)>, FormatError> {
        match self.ahead.pop_front() {
            Some(e) => Ok(Some(e)),
            None => self.pull(),
        }
    }

    /// Whether the next event that is not a comment ends a container.
    fn next_is_end_of_top(&mut self) -> Result<bool, FormatError> {
        let mut i = 0;
        loop {
            if i == self.ahead.len() {
                match self.pull()? {
                    Some(e) => self.ahead.push_back(e),
                    None => return Ok(false),
                }
            }
            match &self.ahead[i].0 {
                Event::Comment(..) => i += 1,
                Event::SequenceEnd | Event::MappingEnd => return Ok(true),
                _ => return Ok(false),
            }
        }
    }
}

/// Most double-quoted scalars with the YAML 1.1 escape `\'` a document may hold.
const MAX_QUOTE_ESCAPE_SCALARS: usize = 256;

/// go-yaml accepts the escape `\'` in double-quoted scalars, which the YAML 1.2 parser
/// refuses. When the parser stops on an unknown escape and the scalar holds `\'`, each
/// `\'` of that scalar is rewritten as `\x27` (the same character) and parsing starts
/// again. Only inputs holding `\'` somewhere pay for this pass. `None`: nothing to fix.
fn quote_escapes_for_yaml12(src: &str) -> Result<Option<Secret>, FormatError> {
    let mut text: Option<Secret> = None;
    for _ in 0..MAX_QUOTE_ESCAPE_SCALARS {
        let current = text.as_ref().map_or(src, |t| t.as_str());
        let mut parser = Parser::new_from_str(current);
        let mut stop = None;
        while let Some(r) = parser.next_event() {
            match r {
                Ok((Event::StreamEnd, _)) => break,
                Ok(_) => {}
                Err(e) => {
                    if *e.kind() == granit_parser::ErrorKind::UnknownQuotedScalarEscape {
                        stop = e.marker().byte_offset();
                    }
                    break;
                }
            }
        }
        // Anything else (success or another error) is left to the real parse.
        let Some(start) = stop else {
            return Ok(text);
        };
        let Some(rewritten) = rewrite_quote_escapes(current, start) else {
            return Ok(text);
        };
        text = Some(Secret::new(rewritten));
    }
    Err(perr(
        1,
        format!("more than {MAX_QUOTE_ESCAPE_SCALARS} double-quoted scalars use the escape \\'"),
    ))
}

/// Rewrites `\'` as `\x27` in the double-quoted scalar opening at byte `start`; `None`
/// when that scalar holds no `\'`.
fn rewrite_quote_escapes(text: &str, start: usize) -> Option<String> {
    let body = text.get(start..)?.strip_prefix('"')?;
    let mut found = Vec::new();
    let mut iter = body.char_indices();
    while let Some((i, c)) = iter.next() {
        match c {
            '"' => break,
            '\\' => {
                if let Some((_, '\'')) = iter.next() {
                    found.push(start + 1 + i);
                }
            }
            _ => {}
        }
    }
    if found.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len() + 2 * found.len());
    let mut last = 0;
    for at in found {
        out.push_str(&text[last..at]);
        out.push_str("\\x27");
        last = at + 2;
    }
    out.push_str(&text[last..]);
    Some(out)
}

/// go-yaml reads YAML 1.1 only, where the YAML 1.2 parser we use is more lenient: sops
/// refuses a `%YAML` directive other than 1.1 ("found incompatible YAML document") and the
/// 1.2-only escape `\/` in a double-quoted scalar ("found unknown escape character").
fn check_yaml11(src: &str, ev: &Event, span: &Span) -> Result<(), FormatError> {
    match ev {
        Event::DocumentStart(_, Some(v)) if (v.major, v.minor) != (1, 1) => Err(perr(
            span.start.line(),
            format!(
                "incompatible YAML document: %YAML {}.{} (sops reads YAML 1.1)",
                v.major, v.minor
            ),
        )),
        Event::Scalar(_, ScalarStyle::DoubleQuoted, _, _) => {
            let (Some(a), Some(b)) = (span.start.byte_offset(), span.end.byte_offset()) else {
                return Ok(());
            };
            let raw = src.get(a..b).unwrap_or("");
            let mut chars = raw.chars();
            let mut line = span.start.line();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('/') => {
                            return Err(perr(line, "unknown escape character `\\/` (YAML 1.1)"))
                        }
                        Some('\n') => line += 1,
                        _ => {}
                    },
                    '\n' => line += 1,
                    _ => {}
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// go-yaml (YAML 1.1) treats U+2028/U+2029 as line breaks inside single-quoted and plain
/// scalars: blanks around them are dropped (sops writes `'a<LS>    b'` for "a<LS>b").
/// The YAML 1.2 parser keeps those blanks as content, so they are removed here.
fn fold_unicode_breaks(text: &str) -> Secret {
    let mut out = Secret::new(String::with_capacity(text.len()));
    let mut after_break = false;
    for c in text.chars() {
        match c {
            '\u{2028}' | '\u{2029}' => {
                while out.ends_with([' ', '\t']) {
                    out.pop();
                }
                out.push(c);
                after_break = true;
            }
            ' ' | '\t' if after_break => {}
            _ => {
                out.push(c);
                after_break = false;
            }
        }
    }
    out
}

fn line_of(input: &[u8], offset: usize) -> usize {
    input[..offset].iter().filter(|b| **b == b'\n').count() + 1
}

/// What a node holds: (nodes, weight) as [`Builder::count`] charges them, comments
/// included since an alias copies them too.
fn measure(n: &Node) -> (usize, usize) {
    let scalar = |s: &Scalar| s.text.len() + NODE_WEIGHT;
    let comment = |c: &Secret| c.len() + NODE_WEIGHT;
    let add = |a: (usize, usize), b: (usize, usize)| (a.0 + b.0, a.1 + b.1);
    match n {
        Node::Scalar(s) => (1, scalar(s)),
        Node::Map(m) => m.items.iter().fold((1, NODE_WEIGHT), |acc, i| match i {
            MItem::Pair { key, value, .. } => add(add(acc, (1, scalar(key))), measure(value)),
            MItem::Comment(c) => add(acc, (0, comment(c))),
        }),
        Node::Seq(s) => s.items.iter().fold((1, NODE_WEIGHT), |acc, i| match i {
            SItem::Elem { node, .. } => add(acc, measure(node)),
            SItem::Comment(c) => add(acc, (0, comment(c))),
        }),
    }
}

fn convert_key(s: &Scalar) -> Result<String, FormatError> {
    if s.style != ScalarStyle::Plain {
        return Ok(s.text.to_string());
    }
    if let Some((handle, suffix)) = s.tag.as_deref() {
        if handle == "tag:yaml.org,2002:" && suffix != "str" && suffix != "merge" {
            return Err(FormatError::NonStringKey {
                line: s.line,
                kind: "tagged non-string",
            });
        }
        return Ok(s.text.to_string());
    }
    let kind = match resolve::resolve_plain(&s.text) {
        Resolved::Str | Resolved::Merge => return Ok(s.text.to_string()),
        Resolved::Null => "null",
        Resolved::Bool(_) => "bool",
        Resolved::Int(_) | Resolved::Uint64 => "int",
        Resolved::Float(_) => "float",
        Resolved::Time(_) => "timestamp",
    };
    Err(FormatError::NonStringKey { line: s.line, kind })
}

fn convert_scalar(s: Scalar) -> Result<Value, FormatError> {
    if let Some((handle, suffix)) = s.tag.as_deref() {
        if handle == "tag:yaml.org,2002:" {
            let bad = || perr(s.line, format!("cannot read the value as !!{suffix}"));
            return Ok(match suffix.as_str() {
                "str" => Value::Str(Text::from(take(s.text))),
                "null" => Value::Null,
                "binary" => {
                    let cleaned: Secret =
                        Secret::new(s.text.chars().filter(|c| !c.is_whitespace()).collect());
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(cleaned.as_bytes())
                        .map_err(|_| bad())?;
                    Value::Str(Text::new(bytes))
                }
                "float" => match resolve::resolve_plain(&s.text) {
                    Resolved::Float(f) => Value::Float(f),
                    Resolved::Int(i) => Value::Float(i as f64),
                    _ => return Err(bad()),
                },
                "int" => match resolve::resolve_plain(&s.text) {
                    Resolved::Int(i) => Value::Int(i),
                    Resolved::Uint64 => return Err(FormatError::Uint64Value { line: s.line }),
                    _ => return Err(bad()),
                },
                "bool" => match resolve::resolve_plain(&s.text) {
                    Resolved::Bool(b) => Value::Bool(b),
                    _ => return Err(bad()),
                },
                "timestamp" => match resolve::parse_timestamp(&s.text) {
                    Some(t) => Value::Time(t),
                    None => return Err(bad()),
                },
                // Unknown core tags keep the text (§1.6: the tag is lost).
                _ => Value::Str(Text::from(take(s.text))),
            });
        }
        // Custom tags keep the scalar as a string; the tag is lost (§1.6).
        return Ok(Value::Str(Text::from(take(s.text))));
    }
    if s.style != ScalarStyle::Plain {
        return Ok(Value::Str(Text::from(take(s.text))));
    }
    Ok(match resolve::resolve_plain(&s.text) {
        Resolved::Null => Value::Null,
        Resolved::Bool(b) => Value::Bool(b),
        Resolved::Int(i) => Value::Int(i),
        Resolved::Uint64 => return Err(FormatError::Uint64Value { line: s.line }),
        Resolved::Float(f) => Value::Float(f),
        Resolved::Time(t) => Value::Time(t),
        Resolved::Merge | Resolved::Str => Value::Str(Text::from(take(s.text))),
    })
}

/// `dups`: refuse duplicate keys (first document only, §1.6).
fn convert(node: Node, dups: bool) -> Result<Value, FormatError> {
    Ok(match node {
        Node::Scalar(s) => convert_scalar(s)?,
        Node::Map(m) => Value::Map(convert_map(m, dups)?),
        Node::Seq(s) => {
            let mut items = Vec::with_capacity(s.items.len());
            for i in s.items {
                items.push(match i {
                    SItem::Elem { node, .. } => SeqEntry::Value(convert(node, dups)?),
                    SItem::Comment(c) => SeqEntry::Comment(Text::from(take(c))),
                });
            }
            Value::Seq(Sequence { items })
        }
    })
}

fn convert_map(m: MapNode, dups: bool) -> Result<Mapping, FormatError> {
    let mut out = Mapping::new();
    out.entries.reserve(m.items.len());
    let mut lines = Vec::with_capacity(m.items.len());
    for item in m.items {
        match item {
            MItem::Comment(c) => out.entries.push(MapEntry::Comment(Text::from(take(c)))),
            MItem::Pair { key, value, line } => {
                let k = convert_key(&key)?;
                lines.push(line);
                out.entries.push(MapEntry::Pair {
                    key: k,
                    value: convert(value, dups)?,
                });
            }
        }
    }
    if !dups {
        return Ok(out);
    }
    // Duplicate keys are an error (§1.6). Checked on borrowed keys in a hash set:
    // hashing a clone of every key, or sorting them, each cost a tenth of decrypting a
    // 10,000-key file. The first repeat in document order is reported.
    let mut seen: HashSet<&str> = HashSet::with_capacity(lines.len());
    for ((k, _), line) in out.pairs().zip(lines.iter().copied()) {
        if !seen.insert(k) {
            return Err(perr(line, format!("duplicate key `{k}`")));
        }
    }
    Ok(out)
}
