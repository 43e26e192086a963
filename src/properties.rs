//! Java's `.properties` syntax, as `java.util.Properties.load` reads TorchServe's
//! `config.properties`: `key=value`, `key: value` or `key value`; `#` and `!` start a comment line;
//! a line ending in an odd number of backslashes continues on the next; `\t`, `\n`, `\uXXXX` and
//! `\x` (any other character, itself) are escapes. Each entry keeps the line it starts on, so that
//! a bad value can be named by its line.

/// One `key=value` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
    /// The line it starts on, from 1.
    pub line: usize,
}

/// Every entry of `text`, in order (a key given twice appears twice; the last one wins).
pub fn parse(text: &str) -> Vec<Property> {
    let mut entries = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let first = line.trim_start_matches([' ', '\t', '\u{c}']);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut logical = first.to_owned();
        while ends_in_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start_matches([' ', '\t', '\u{c}'])),
                None => break,
            }
        }
        let (key, value) = split_entry(&logical);
        entries.push(Property {
            key: unescape(key),
            value: unescape(value),
            line: index + 1,
        });
    }
    entries
}

fn ends_in_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// The key ends at the first unescaped `=`, `:` or whitespace; the separator and the whitespace
/// around it are not part of the value.
fn split_entry(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = line.len();
    for (at, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if matches!(c, '=' | ':' | ' ' | '\t' | '\u{c}') {
            key_end = at;
            break;
        }
    }
    let key = &line[..key_end];
    let rest = line[key_end..].trim_start_matches([' ', '\t', '\u{c}']);
    let rest = rest
        .strip_prefix(['=', ':'])
        .map_or(rest, |value| value.trim_start_matches([' ', '\t', '\u{c}']));
    (key, rest)
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.clone().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(decoded) if hex.len() == 4 => {
                        out.push(decoded);
                        chars.nth(3);
                    }
                    _ => out.push('u'),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String, usize)> {
        parse(text)
            .into_iter()
            .map(|p| (p.key, p.value, p.line))
            .collect()
    }

    #[test]
    fn the_kserve_guide_file_reads_as_java_reads_it() {
        let text = "inference_address=http://127.0.0.1:8085\n# a comment\n! another\n\nmanagement_address = http://127.0.0.1:8081\nnumber_of_netty_threads: 4\njob_queue_size 10\n";
        assert_eq!(
            pairs(text),
            [
                (
                    "inference_address".into(),
                    "http://127.0.0.1:8085".into(),
                    1
                ),
                (
                    "management_address".into(),
                    "http://127.0.0.1:8081".into(),
                    5
                ),
                ("number_of_netty_threads".into(), "4".into(), 6),
                ("job_queue_size".into(), "10".into(), 7),
            ]
        );
    }

    #[test]
    fn continuations_escapes_and_json_values() {
        let text = "model_snapshot={\"name\":\"startup.cfg\",\\\n    \"modelCount\":1}\nkey\\=with\\:seps=a\\tb\\u0041\nempty=\nlast=x";
        assert_eq!(
            pairs(text),
            [
                (
                    "model_snapshot".into(),
                    "{\"name\":\"startup.cfg\",\"modelCount\":1}".into(),
                    1
                ),
                ("key=with:seps".into(), "a\tbA".into(), 3),
                ("empty".into(), String::new(), 4),
                ("last".into(), "x".into(), 5),
            ]
        );
    }
}
