//! Builds the directive tree from tokens, as `ngx_conf_parse` does.

use std::path::Path;
use std::sync::Arc;

use super::lexer::{Lexer, TokenKind};
use super::{Arg, Directive, ParseError, ParseErrorKind, Pos, MAX_NESTING};

/// Parses one file's text; `include` directives are left as they are.
pub(super) fn parse(src: &[u8], file: Arc<Path>) -> Result<Vec<Directive>, ParseError> {
    let mut lexer = Lexer::new(src, file);
    parse_block(&mut lexer, None, 0)
}

/// How a statement ended.
enum Statement {
    Directive(Directive),
    /// A `}` with no directive pending.
    BlockEnd(Pos),
    Eof,
}

/// Parses directives until the `}` closing `opener`'s block or, at top level
/// (`opener` is `None`), until end of input. `depth` is the nesting level of
/// the directives parsed here.
fn parse_block(
    lexer: &mut Lexer<'_>,
    opener: Option<&Arg>,
    depth: usize,
) -> Result<Vec<Directive>, ParseError> {
    let mut directives = Vec::new();
    loop {
        match parse_statement(lexer, depth)? {
            Statement::Directive(directive) => directives.push(directive),
            Statement::BlockEnd(pos) => {
                return match opener {
                    Some(_) => Ok(directives),
                    None => Err(unexpected(pos, '}')),
                };
            }
            Statement::Eof => {
                return match opener {
                    None => Ok(directives),
                    Some(name) => Err(ParseError::new(
                        name.pos.clone(),
                        ParseErrorKind::UnclosedBlock {
                            directive: name.value.clone(),
                        },
                    )),
                };
            }
        }
    }
}

/// Collects words up to `;`, `{` (then parses the block) or `}`.
fn parse_statement(lexer: &mut Lexer<'_>, depth: usize) -> Result<Statement, ParseError> {
    let mut words = Vec::new();
    loop {
        let Some(token) = lexer.next_token()? else {
            return match words.first() {
                None => Ok(Statement::Eof),
                Some(name) => Err(missing_semicolon(name)),
            };
        };
        match token.kind {
            TokenKind::Word { value, quoted } => words.push(Arg {
                value,
                quoted,
                pos: token.pos,
            }),
            TokenKind::CloseBrace if words.is_empty() => return Ok(Statement::BlockEnd(token.pos)),
            // nginx: `}` while a directive lacks its `;`.
            TokenKind::CloseBrace => return Err(unexpected(token.pos, '}')),
            TokenKind::Semicolon => {
                let (name, args) = split_name(words, token.pos, ';')?;
                return Ok(Statement::Directive(directive(name, args, None)));
            }
            TokenKind::OpenBrace => {
                let (name, args) = split_name(words, token.pos, '{')?;
                if depth >= MAX_NESTING {
                    return Err(ParseError::new(
                        name.pos,
                        ParseErrorKind::TooDeep { limit: MAX_NESTING },
                    ));
                }
                let block = parse_block(lexer, Some(&name), depth + 1)?;
                return Ok(Statement::Directive(directive(name, args, Some(block))));
            }
        }
    }
}

/// Splits off the directive name; `;` or `{` without one is an error.
fn split_name(words: Vec<Arg>, at: Pos, ch: char) -> Result<(Arg, Vec<Arg>), ParseError> {
    let mut words = words.into_iter();
    match words.next() {
        Some(name) => Ok((name, words.collect())),
        None => Err(unexpected(at, ch)),
    }
}

fn directive(name: Arg, args: Vec<Arg>, block: Option<Vec<Directive>>) -> Directive {
    Directive {
        name: name.value,
        args,
        block,
        pos: name.pos,
    }
}

fn unexpected(pos: Pos, ch: char) -> ParseError {
    ParseError::new(pos, ParseErrorKind::UnexpectedChar { ch })
}

fn missing_semicolon(name: &Arg) -> ParseError {
    ParseError::new(
        name.pos.clone(),
        ParseErrorKind::MissingSemicolon {
            directive: name.value.clone(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(src: &str) -> Result<Vec<Directive>, ParseError> {
        parse(src.as_bytes(), Arc::from(Path::new("t.conf")))
    }

    /// Compact rendering: quoted args in Rust debug quotes, blocks in braces.
    fn render(directives: &[Directive]) -> String {
        let items: Vec<String> = directives.iter().map(render_one).collect();
        items.join(" ")
    }

    fn render_one(d: &Directive) -> String {
        let mut out = d.name.clone();
        for arg in &d.args {
            out.push(' ');
            if arg.quoted {
                out.push_str(&format!("{:?}", arg.value));
            } else {
                out.push_str(&arg.value);
            }
        }
        match &d.block {
            None => out.push(';'),
            Some(block) if block.is_empty() => out.push_str(" {}"),
            Some(block) => out.push_str(&format!(" {{ {} }}", render(block))),
        }
        out
    }

    fn ok(src: &str) -> Vec<Directive> {
        parse_text(src).unwrap_or_else(|e| panic!("{src:?}: {e}"))
    }

    #[test]
    fn structure() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("# nothing\n\n", ""),
            ("a;", "a;"),
            ("a b c;", "a b c;"),
            ("a;b;", "a; b;"),
            ("events {}", "events {}"),
            (
                "events{worker_connections 1024;}",
                "events { worker_connections 1024; }",
            ),
            (
                "http { server { location / { return 200; } } }",
                "http { server { location / { return 200; } } }",
            ),
            ("a { b; } c;", "a { b; } c;"),
            ("a\n{\nb\n;\n}\n", "a { b; }"),
            // Comments after directives and after `}`.
            ("return 301 x; # managed by Certbot\n", "return 301 x;"),
            ("s {\n a; # c\n} # managed by Certbot\nb;", "s { a; } b;"),
            ("a; #}\n", "a;"),
            ("a #b\n c;", "a c;"),
            ("a#b;", "a#b;"),
            // Quotes and escapes.
            (r#"add_header X "a b";"#, r#"add_header X "a b";"#),
            (r#"a 'x\'y' "p\"q";"#, r#"a "x'y" "p\"q";"#),
            (r#"a "\n\t";"#, r#"a "\n\t";"#),
            (r#""quoted name" x;"#, "quoted name x;"),
            (r#"return 200 "{}";"#, r#"return 200 "{}";"#),
            // Regex arguments.
            (
                r"location ~* \.(png|jpg)$ { expires 30d; }",
                r"location ~* \.(png|jpg)$ { expires 30d; }",
            ),
            (
                r#"rewrite "^/api/(.*)$" /$1 break;"#,
                r#"rewrite "^/api/(.*)$" /$1 break;"#,
            ),
            (r#"location ~ "\.php$" {}"#, r#"location ~ "\\.php$" {}"#),
            (r"location ~ \.php$ {}", r"location ~ \.php$ {}"),
            // Variables with braces do not open blocks.
            (
                "set $x ${host}_${uri}; a ${b} { c; }",
                "set $x ${host}_${uri}; a ${b} { c; }",
            ),
            (
                "map $http_upgrade $connection_upgrade { default upgrade; '' close; }",
                "map $http_upgrade $connection_upgrade { default upgrade;  close; }",
            ),
            (
                r#"if ($host = "www.example.com") { return 301 https://$host$request_uri; }"#,
                r#"if ($host = "www.example.com" ) { return 301 https://$host$request_uri; }"#,
            ),
            ("if ($a) {}", "if ($a) {}"),
            // Unquoted `}` inside a token is literal.
            ("a b};", "a b};"),
            ("include conf.d/*.conf;", "include conf.d/*.conf;"),
        ];
        for (src, want) in cases {
            assert_eq!(render(&ok(src)), *want, "input {src:?}");
        }
    }

    #[test]
    fn empty_quoted_arg_is_kept() {
        let dirs = ok("map $a $b { '' close; \"\" x; }");
        let block = dirs[0].block.as_ref().unwrap();
        assert_eq!(block[0].name, "");
        assert_eq!(block[0].args[0].value, "close");
        assert_eq!(block[1].name, "");
    }

    #[test]
    fn positions() {
        let src = "http {\n    server {\n        listen  80;\n\t\"root\" '/var/www';\n    }\n}\n";
        let dirs = ok(src);
        let http = &dirs[0];
        let server = &http.block.as_ref().unwrap()[0];
        let inner = server.block.as_ref().unwrap();
        let at = |p: &Pos| (p.line, p.col);
        assert_eq!(at(&http.pos), (1, 1));
        assert_eq!(at(&server.pos), (2, 5));
        assert_eq!(at(&inner[0].pos), (3, 9));
        assert_eq!(at(&inner[0].args[0].pos), (3, 17));
        assert_eq!(at(&inner[1].pos), (4, 2));
        assert_eq!(inner[1].name, "root");
        assert_eq!(at(&inner[1].args[0].pos), (4, 9));
        assert!(inner[1].args[0].quoted);
        assert_eq!(inner[1].args[0].pos.to_string(), "t.conf:4:9");
    }

    #[test]
    fn errors() {
        let deep_ok = "a{".repeat(MAX_NESTING) + &"}".repeat(MAX_NESTING);
        let too_deep = "a {".repeat(MAX_NESTING + 1);
        let cases: Vec<(&str, &str)> = vec![
            ("}", r#"t.conf:1:1: unexpected "}""#),
            ("a;\n  }", r#"t.conf:2:3: unexpected "}""#),
            ("a { } }", r#"t.conf:1:7: unexpected "}""#),
            (";", r#"t.conf:1:1: unexpected ";""#),
            ("a; ;", r#"t.conf:1:4: unexpected ";""#),
            ("s { ; }", r#"t.conf:1:5: unexpected ";""#),
            ("{", r#"t.conf:1:1: unexpected "{""#),
            ("a { {} }", r#"t.conf:1:5: unexpected "{""#),
            ("s {\n listen 80 }", r#"t.conf:2:12: unexpected "}""#),
            (r#"s { return "x"}"#, r#"t.conf:1:15: unexpected "}""#),
            (
                "user nginx",
                r#"t.conf:1:1: unexpected end of file, directive "user" is not terminated by ";""#,
            ),
            (
                "a;\n  b c\n\n# tail\n",
                r#"t.conf:2:3: unexpected end of file, directive "b" is not terminated by ";""#,
            ),
            (
                "http {\n server {\n listen 80",
                r#"t.conf:3:2: unexpected end of file, directive "listen" is not terminated by ";""#,
            ),
            (
                "http {\n  server {\n  }\n",
                r#"t.conf:1:1: unexpected end of file, expecting "}" to close the "http" block opened here"#,
            ),
            (
                "http {\n  server {\n",
                r#"t.conf:2:3: unexpected end of file, expecting "}" to close the "server" block opened here"#,
            ),
            ("a \"b;\n", "t.conf:1:3: unterminated quoted string"),
            ("a \"b\"c;", r#"t.conf:1:6: unexpected "c""#),
            (
                &too_deep,
                "t.conf:1:193: blocks nested deeper than 64 levels",
            ),
        ];
        for (src, want) in cases {
            let err = parse_text(src).expect_err(src);
            assert_eq!(err.to_string(), want, "input {src:?}");
        }
        assert!(parse_text(&deep_ok).is_ok());
    }

    #[test]
    fn realistic_nginx_conf() {
        let src = r#"
user www-data;
worker_processes auto;
pid /run/nginx.pid;
include /etc/nginx/modules-enabled/*.conf;

events {
    worker_connections 768;
    # multi_accept on;
}

http {
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;

    ssl_protocols TLSv1.2 TLSv1.3; # Dropping SSLv3, ref: POODLE
    ssl_prefer_server_ciphers on;

    log_format main '$remote_addr - $remote_user [$time_local] "$request" '
                    '$status $body_bytes_sent "$http_referer" '
                    '"$http_user_agent" "$http_x_forwarded_for"';
    access_log /var/log/nginx/access.log main;
    error_log /var/log/nginx/error.log;

    gzip on;
    gzip_types text/plain text/css application/json application/javascript;

    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }

    upstream backend {
        server 127.0.0.1:8080 weight=5;
        server unix:/run/app.sock backup;
        keepalive 32;
    }

    server {
        listen 80 default_server;
        listen [::]:80 default_server;
        server_name example.com www.example.com;
        root /var/www/html;
        index index.html index.htm;

        location / {
            try_files $uri $uri/ =404;
        }

        location /api/ {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
        }

        location ~* \.(png|jpg|jpeg|gif|ico)$ {
            expires 30d;
            add_header Cache-Control "public, no-transform";
        }

        location ~ /\.ht {
            deny all;
        }

        rewrite "^/old/(\d{4})/(.*)$" /new/$1/$2 permanent;
    }

    include /etc/nginx/conf.d/*.conf;
    include /etc/nginx/sites-enabled/*;
}
"#;
        let dirs = ok(src);
        let names: Vec<&str> = dirs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "user",
                "worker_processes",
                "pid",
                "include",
                "events",
                "http"
            ]
        );
        let http = dirs[5].block.as_ref().unwrap();
        let log_format = http.iter().find(|d| d.name == "log_format").unwrap();
        assert_eq!(log_format.args.len(), 4);
        assert_eq!(
            log_format.args[3].value,
            r#""$http_user_agent" "$http_x_forwarded_for""#
        );
        let server = http.iter().find(|d| d.name == "server").unwrap();
        let server_block = server.block.as_ref().unwrap();
        let image = &server_block
            .iter()
            .filter(|d| d.name == "location")
            .nth(2)
            .unwrap();
        assert_eq!(image.args[1].value, r"\.(png|jpg|jpeg|gif|ico)$");
        assert_eq!(
            image.block.as_ref().unwrap()[1].args[1].value,
            "public, no-transform"
        );
        let rewrite = server_block.iter().find(|d| d.name == "rewrite").unwrap();
        assert_eq!(rewrite.args[0].value, r"^/old/(\d{4})/(.*)$");
        let last = http.last().unwrap();
        assert_eq!(
            (last.name.as_str(), last.args[0].value.as_str()),
            ("include", "/etc/nginx/sites-enabled/*")
        );
        assert_eq!((last.pos.line, last.pos.col), (74, 5));
    }

    #[test]
    fn certbot_server_block() {
        let src = r#"server {
    server_name example.com www.example.com;
    root /var/www/example;

    listen [::]:443 ssl ipv6only=on; # managed by Certbot
    listen 443 ssl; # managed by Certbot
    ssl_certificate /etc/letsencrypt/live/example.com/fullchain.pem; # managed by Certbot
    ssl_certificate_key /etc/letsencrypt/live/example.com/privkey.pem; # managed by Certbot
    include /etc/letsencrypt/options-ssl-nginx.conf; # managed by Certbot
    ssl_dhparam /etc/letsencrypt/ssl-dhparams.pem; # managed by Certbot

}
server {
    if ($host = www.example.com) {
        return 301 https://$host$request_uri;
    } # managed by Certbot


    if ($host = example.com) {
        return 301 https://$host$request_uri;
    } # managed by Certbot


    listen 80;
    listen [::]:80;
    server_name example.com www.example.com;
    return 404; # managed by Certbot




}"#;
        let want = "server { server_name example.com www.example.com; root /var/www/example; \
            listen [::]:443 ssl ipv6only=on; listen 443 ssl; \
            ssl_certificate /etc/letsencrypt/live/example.com/fullchain.pem; \
            ssl_certificate_key /etc/letsencrypt/live/example.com/privkey.pem; \
            include /etc/letsencrypt/options-ssl-nginx.conf; \
            ssl_dhparam /etc/letsencrypt/ssl-dhparams.pem; } \
            server { if ($host = www.example.com) { return 301 https://$host$request_uri; } \
            if ($host = example.com) { return 301 https://$host$request_uri; } \
            listen 80; listen [::]:80; server_name example.com www.example.com; return 404; }";
        assert_eq!(render(&ok(src)), want);
    }

    /// Parses `src` and checks that every position is a real 1-based one.
    fn assert_sane(src: &str) {
        fn check(dirs: &[Directive]) {
            for d in dirs {
                assert!(d.pos.line >= 1 && d.pos.col >= 1);
                assert!(d.args.iter().all(|a| a.pos.line >= 1 && a.pos.col >= 1));
                if let Some(block) = &d.block {
                    check(block);
                }
            }
        }
        match parse_text(src) {
            Ok(dirs) => check(&dirs),
            Err(err) => assert!(err.pos.line >= 1 && err.pos.col >= 1, "{src:?}: {err}"),
        }
    }

    /// Calls `f` with every string of length `0..=max_len` over `alphabet`.
    fn for_all_strings(alphabet: &[char], max_len: usize, f: &mut dyn FnMut(&str)) {
        let mut digits: Vec<usize> = Vec::new();
        let mut text = String::new();
        loop {
            text.clear();
            text.extend(digits.iter().map(|&d| alphabet[d]));
            f(&text);
            // Odometer increment; grow the length once every digit wrapped.
            let mut i = 0;
            loop {
                if i == digits.len() {
                    if digits.len() == max_len {
                        return;
                    }
                    digits.push(0);
                    break;
                }
                digits[i] += 1;
                if digits[i] < alphabet.len() {
                    break;
                }
                digits[i] = 0;
                i += 1;
            }
        }
    }

    #[test]
    fn never_panics_exhaustive() {
        let mut count = 0usize;
        for_all_strings(&['{', '}', ';', '"', '\\', '$', 'a', ' '], 6, &mut |s| {
            assert_sane(s);
            count += 1;
        });
        assert_eq!(count, (0..=6u32).map(|n| 8usize.pow(n)).sum::<usize>());
        let full: Vec<char> = "{};\"'\\# \n$a~".chars().collect();
        for_all_strings(&full, 4, &mut assert_sane);
    }

    #[test]
    fn never_panics_random() {
        let alphabet: Vec<char> = "{};\"'\\# \n$a~é(){".chars().collect();
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            // Knuth's MMIX LCG; the high bits are the well-mixed ones.
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        for _ in 0..5000 {
            let len = next() % 200;
            let text: String = (0..len)
                .map(|_| alphabet[next() % alphabet.len()])
                .collect();
            assert_sane(&text);
        }
    }
}
