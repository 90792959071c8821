//! Tokenizer mirroring nginx's `ngx_conf_read_token`.
//!
//! Works on bytes, since every special character is ASCII: text outside
//! tokens (comments) need not be UTF-8, as with nginx. Token values must be.

use std::path::Path;
use std::sync::Arc;

use super::{ParseError, ParseErrorKind, Pos};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TokenKind {
    /// A directive name or argument: quotes removed, escapes processed.
    Word {
        value: String,
        quoted: bool,
    },
    Semicolon,
    OpenBrace,
    CloseBrace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token {
    pub(super) kind: TokenKind,
    pub(super) pos: Pos,
}

pub(super) struct Lexer<'a> {
    src: &'a [u8],
    at: usize,
    line: u32,
    col: u32,
    file: Arc<Path>,
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

impl<'a> Lexer<'a> {
    pub(super) fn new(src: &'a [u8], file: Arc<Path>) -> Self {
        Lexer {
            src,
            at: 0,
            line: 1,
            col: 1,
            file,
        }
    }

    /// The next token, or `None` at end of input.
    pub(super) fn next_token(&mut self) -> Result<Option<Token>, ParseError> {
        self.skip_blanks_and_comments();
        let pos = self.pos();
        let Some(byte) = self.peek() else {
            return Ok(None);
        };
        let kind = match byte {
            b';' => self.punct(TokenKind::Semicolon),
            b'{' => self.punct(TokenKind::OpenBrace),
            b'}' => self.punct(TokenKind::CloseBrace),
            b'"' | b'\'' => self.quoted(byte, &pos)?,
            _ => self.unquoted(&pos)?,
        };
        Ok(Some(Token { kind, pos }))
    }

    fn pos(&self) -> Pos {
        Pos {
            file: Arc::clone(&self.file),
            line: self.line,
            col: self.col,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        if byte == b'\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else if byte & 0xC0 != 0x80 {
            // Columns count characters: UTF-8 continuation bytes add none.
            self.col = self.col.saturating_add(1);
        }
        Some(byte)
    }

    fn punct(&mut self, kind: TokenKind) -> TokenKind {
        self.bump();
        kind
    }

    /// `#` starts a comment only where a token could start; inside a token
    /// it is an ordinary character (see `unquoted`).
    fn skip_blanks_and_comments(&mut self) {
        while let Some(byte) = self.peek() {
            if is_space(byte) {
                self.bump();
            } else if byte == b'#' {
                while self.peek().is_some_and(|b| b != b'\n') {
                    self.bump();
                }
            } else {
                break;
            }
        }
    }

    fn quoted(&mut self, quote: u8, pos: &Pos) -> Result<TokenKind, ParseError> {
        self.bump();
        let start = self.at;
        let end = loop {
            let end = self.at;
            match self.bump() {
                None => {
                    return Err(ParseError::new(
                        pos.clone(),
                        ParseErrorKind::UnterminatedQuote,
                    ))
                }
                // The escaped character cannot close the string.
                Some(b'\\') => {
                    self.bump();
                }
                Some(byte) if byte == quote => break end,
                Some(_) => {}
            }
        };
        self.check_after_quote()?;
        let raw = self.src.get(start..end).unwrap_or_default();
        Ok(TokenKind::Word {
            value: decode(raw, pos)?,
            quoted: true,
        })
    }

    /// nginx wants a separator right after a closing quote. `}` is let
    /// through: the parser rejects it with the same message nginx gives,
    /// since a directive is always pending here. `)` is allowed so that
    /// `if ($a = "b")` works; it then starts the next token, as in nginx.
    fn check_after_quote(&self) -> Result<(), ParseError> {
        match self.peek() {
            None => Ok(()),
            Some(byte) if is_space(byte) || b";{})".contains(&byte) => Ok(()),
            Some(_) => Err(ParseError::new(
                self.pos(),
                ParseErrorKind::UnexpectedChar {
                    ch: self.peek_char(),
                },
            )),
        }
    }

    fn peek_char(&self) -> char {
        let end = self.src.len().min(self.at + 4);
        let bytes = self.src.get(self.at..end).unwrap_or_default();
        String::from_utf8_lossy(bytes)
            .chars()
            .next()
            .unwrap_or(char::REPLACEMENT_CHARACTER)
    }

    /// An unquoted token runs until whitespace, `;` or `{`. Quotes, `#` and
    /// `}` inside it are ordinary characters; a backslash protects the next
    /// byte; `{` right after `$` is variable syntax (`${name}`), not a block.
    fn unquoted(&mut self, pos: &Pos) -> Result<TokenKind, ParseError> {
        let start = self.at;
        let mut after_dollar = false;
        while let Some(byte) = self.peek() {
            if byte == b'{' && after_dollar {
                // nginx keeps the flag set here, so `${{` stays in the token.
                self.bump();
                continue;
            }
            after_dollar = byte == b'$';
            if is_space(byte) || byte == b';' || byte == b'{' {
                break;
            }
            self.bump();
            if byte == b'\\' {
                self.bump();
            }
        }
        let raw = self.src.get(start..self.at).unwrap_or_default();
        Ok(TokenKind::Word {
            value: decode(raw, pos)?,
            quoted: false,
        })
    }
}

/// Applies nginx's escapes, the same for quoted and unquoted tokens:
/// `\"`, `\'`, `\\` give the character, `\n`, `\r`, `\t` the control
/// character, and any other `\x` stays as is (regexes rely on that).
fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&byte) = raw.get(i) {
        let escaped = match (byte, raw.get(i + 1)) {
            (b'\\', Some(&c @ (b'"' | b'\'' | b'\\'))) => Some(c),
            (b'\\', Some(b'n')) => Some(b'\n'),
            (b'\\', Some(b'r')) => Some(b'\r'),
            (b'\\', Some(b't')) => Some(b'\t'),
            _ => None,
        };
        match escaped {
            Some(c) => {
                out.push(c);
                i += 2;
            }
            None => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

fn decode(raw: &[u8], pos: &Pos) -> Result<String, ParseError> {
    String::from_utf8(unescape(raw))
        .map_err(|_| ParseError::new(pos.clone(), ParseErrorKind::InvalidUtf8))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(src: &[u8]) -> Result<Vec<Token>, ParseError> {
        let mut lexer = Lexer::new(src, Arc::from(Path::new("t.conf")));
        let mut tokens = Vec::new();
        while let Some(token) = lexer.next_token()? {
            tokens.push(token);
        }
        Ok(tokens)
    }

    /// Tokens as short strings: `w:` unquoted word, `q:` quoted word.
    fn render(src: &str) -> Vec<String> {
        lex(src.as_bytes())
            .unwrap_or_else(|e| panic!("{src:?}: {e}"))
            .into_iter()
            .map(|t| match t.kind {
                TokenKind::Word {
                    value,
                    quoted: false,
                } => format!("w:{value}"),
                TokenKind::Word {
                    value,
                    quoted: true,
                } => format!("q:{value}"),
                TokenKind::Semicolon => ";".into(),
                TokenKind::OpenBrace => "{".into(),
                TokenKind::CloseBrace => "}".into(),
            })
            .collect()
    }

    #[test]
    fn tokens() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("  \t\r\n", &[]),
            ("a b;", &["w:a", "w:b", ";"]),
            ("a{}", &["w:a", "{", "}"]),
            ("a;b;", &["w:a", ";", "w:b", ";"]),
            ("a\r\nb", &["w:a", "w:b"]),
            // `}` and `#` are ordinary inside an unquoted token.
            ("a} b", &["w:a}", "w:b"]),
            ("a#b #c\nd", &["w:a#b", "w:d"]),
            ("# only a comment", &[]),
            ("a; # c ; { }\n}", &["w:a", ";", "}"]),
            // Variables: `{` after `$` is part of the token.
            ("${var}{", &["w:${var}", "{"]),
            ("a${b}c;", &["w:a${b}c", ";"]),
            ("$a{", &["w:$a", "{"]),
            ("${{ x", &["w:${{", "w:x"]),
            ("$ x", &["w:$", "w:x"]),
            // Quotes.
            (r#""a b""#, &["q:a b"]),
            ("'a b'", &["q:a b"]),
            (r#""""#, &["q:"]),
            ("''", &["q:"]),
            (r#""a";"#, &["q:a", ";"]),
            (r#""a"{"#, &["q:a", "{"]),
            (r#""a"}"#, &["q:a", "}"]),
            (r#"'{;}#'"#, &["q:{;}#"]),
            (r#""it's""#, &["q:it's"]),
            (r#"'say "hi"'"#, &[r#"q:say "hi""#]),
            ("\"a\nb\"", &["q:a\nb"]),
            // `)` may follow a closing quote and starts the next token.
            (r#"("a")"#, &[r#"w:("a")"#]),
            (r#"($a = "b")"#, &["w:($a", "w:=", "q:b", "w:)"]),
            // Quotes inside an unquoted token are ordinary.
            (r#"a"b""#, &[r#"w:a"b""#]),
            // Escapes, same in both token kinds.
            (r#""\"\'\\""#, &[r#"q:"'\"#]),
            (r#"'\n\r\t'"#, &["q:\n\r\t"]),
            (r#""\.php$""#, &[r"q:\.php$"]),
            (r#"'\d\w'"#, &[r"q:\d\w"]),
            (r"\.php$", &[r"w:\.php$"]),
            (r"^/a\\b", &[r"w:^/a\b"]),
            (r#"\"x"#, &[r#"w:"x"#]),
            (r"\n", &["w:\n"]),
            // A backslash protects a separator, which keeps its backslash.
            (r"a\ b", &[r"w:a\ b"]),
            (r"a\;b;", &[r"w:a\;b", ";"]),
            (r"a\{b", &[r"w:a\{b"]),
            (r"a\", &[r"w:a\"]),
            (r#""a\"b""#, &[r#"q:a"b"#]),
            // Regexes.
            (r"~* \.(png|jpg)$", &["w:~*", r"w:\.(png|jpg)$"]),
            (r#""^/api/(.*)$""#, &["q:^/api/(.*)$"]),
            (r"~ ^/(\d{3})/x$", &["w:~", r"w:^/(\d", "{", "w:3})/x$"]),
            (r#"~ "^/(\d{3})/x$""#, &["w:~", r"q:^/(\d{3})/x$"]),
            ("é ü;", &["w:é", "w:ü", ";"]),
        ];
        for (src, want) in cases {
            assert_eq!(render(src), *want, "input {src:?}");
        }
    }

    #[test]
    fn positions() {
        let tokens = lex("a  \"b\"\n\t c;\né 'ü' x".as_bytes()).unwrap();
        let got: Vec<(u32, u32)> = tokens.iter().map(|t| (t.pos.line, t.pos.col)).collect();
        assert_eq!(
            got,
            [(1, 1), (1, 4), (2, 3), (2, 4), (3, 1), (3, 3), (3, 7)]
        );
        assert_eq!(&*tokens[0].pos.file, Path::new("t.conf"));
    }

    #[test]
    fn escaped_newline_counts_lines() {
        let tokens = lex(b"a\\\nb c").unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!((tokens[1].pos.line, tokens[1].pos.col), (2, 3));
    }

    #[test]
    fn errors() {
        let cases: &[(&[u8], &str)] = &[
            (b"\"abc", "t.conf:1:1: unterminated quoted string"),
            (b"a 'b;\n\n", "t.conf:1:3: unterminated quoted string"),
            (b"\"a\\\"", "t.conf:1:1: unterminated quoted string"),
            (b"\"a\\", "t.conf:1:1: unterminated quoted string"),
            (b"a \"b\"c;", "t.conf:1:6: unexpected \"c\""),
            (b"\"a\"'b'", "t.conf:1:4: unexpected \"'\""),
            (b"\"a\"\"b\"", "t.conf:1:4: unexpected \"\"\""),
            (b"'a'# c", "t.conf:1:4: unexpected \"#\""),
            ("\n 'é'ü".as_bytes(), "t.conf:2:5: unexpected \"ü\""),
            (b"\"a\"\xff", "t.conf:1:4: unexpected \"\u{fffd}\""),
            (b"a \xff;", "t.conf:1:3: invalid UTF-8 in token"),
            (b"a \"\xfe\";", "t.conf:1:3: invalid UTF-8 in token"),
        ];
        for (src, want) in cases {
            let err = lex(src).expect_err(&String::from_utf8_lossy(src));
            assert_eq!(
                err.to_string(),
                *want,
                "input {:?}",
                String::from_utf8_lossy(src)
            );
        }
    }

    #[test]
    fn non_utf8_comment_is_fine() {
        let tokens = lex(b"# caf\xe9\na;").unwrap();
        assert_eq!(tokens.len(), 2);
    }

    #[test]
    fn unescape_rules() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"\\", b"\\"),
            (b"\\\\", b"\\"),
            (b"\\\\\\", b"\\\\"),
            (b"\\x\\\"", b"\\x\""),
            (b"\\n\\t\\r", b"\n\t\r"),
            (b"a\\'b", b"a'b"),
        ];
        for (raw, want) in cases {
            assert_eq!(unescape(raw), *want);
        }
    }
}
