//! Encodings (base64, JSON, YAML), digests, and Sprig's functions that would otherwise be
//! random or read the clock, made deterministic: scanning a chart twice gives the same result.

use std::cell::Cell;
use std::fmt::Write;

use crate::exec::FuncMap;
use crate::value::Value;
use sha2::{Digest, Sha256, Sha512};

use super::{add, arg, error, last, str_arg, strval, to_i64};
use crate::format::{to_json, to_pretty_json, to_raw_json, to_yaml, to_yaml_pretty};
use crate::semver;
use crate::value::{self, from_yaml, list, string, Map};
use crate::yaml;

pub(super) fn register(m: &mut FuncMap) {
    add(m, "b64enc", |a| {
        Ok(string(base64_encode(str_arg(last(a)).as_bytes())))
    });
    add(m, "b64dec", |a| {
        let s = str_arg(last(a));
        Ok(string(match base64_decode(&s) {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => "illegal base64 data at input byte 0".into(),
        }))
    });
    add(m, "sha256sum", |a| {
        Ok(string(hex::encode(Sha256::digest(
            str_arg(last(a)).as_bytes(),
        ))))
    });
    add(m, "sha512sum", |a| {
        Ok(string(hex::encode(Sha512::digest(
            str_arg(last(a)).as_bytes(),
        ))))
    });
    add(m, "sha1sum", |a| {
        Ok(string(hex::encode(sha1(str_arg(last(a)).as_bytes()))))
    });
    add(m, "adler32sum", |a| {
        Ok(string(adler32(str_arg(last(a)).as_bytes()).to_string()))
    });

    for name in ["toJson", "mustToJson"] {
        add(m, name, |a| Ok(string(to_json(last(a)))));
    }
    for name in ["toPrettyJson", "mustToPrettyJson"] {
        add(m, name, |a| Ok(string(to_pretty_json(last(a)))));
    }
    for name in ["toRawJson", "mustToRawJson"] {
        add(m, name, |a| Ok(string(to_raw_json(last(a)))));
    }
    add(m, "fromJson", |a| Ok(from_json_map(&str_arg(last(a)))));
    add(m, "mustFromJson", |a| {
        let text = str_arg(last(a));
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| error("mustFromJson", e))?;
        Ok(from_json_value(&v))
    });
    add(m, "fromJsonArray", |a| {
        let text = str_arg(last(a));
        Ok(match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v @ serde_json::Value::Array(_)) => from_json_value(&v),
            Ok(_) => list(vec![string("json: cannot unmarshal into a list")]),
            Err(e) => list(vec![string(e.to_string())]),
        })
    });
    for name in ["toYaml", "mustToYaml"] {
        add(m, name, |a| Ok(string(to_yaml(last(a)))));
    }
    add(m, "toYamlPretty", |a| Ok(string(to_yaml_pretty(last(a)))));
    add(m, "fromYaml", |a| Ok(from_yaml_map(&str_arg(last(a)))));
    add(m, "fromYamlArray", |a| {
        Ok(match yaml::parse_document(&str_arg(last(a))) {
            Ok(y @ yaml::Yaml::Seq(_)) => from_yaml(&y),
            Ok(yaml::Yaml::Null) => list(vec![]),
            Ok(_) => list(vec![string(
                "error unmarshaling JSON: cannot unmarshal object into a list",
            )]),
            Err(e) => list(vec![string(e.message)]),
        })
    });
    add(m, "toToml", |a| Ok(string(to_toml(last(a)))));

    add(m, "semverCompare", |a| {
        semver::semver_compare(&str_arg(arg(a, 0)), &str_arg(arg(a, 1)))
            .map(Value::Bool)
            .map_err(|e| error("semverCompare", e))
    });
    add(m, "semver", |a| {
        let v = semver::Version::parse(&str_arg(last(a))).map_err(|e| error("semver", e))?;
        let mut d = Map::new();
        d.insert("Major".into(), Value::Int(v.major as i64));
        d.insert("Minor".into(), Value::Int(v.minor as i64));
        d.insert("Patch".into(), Value::Int(v.patch as i64));
        d.insert("Prerelease".into(), string(&v.prerelease));
        d.insert("Metadata".into(), string(&v.metadata));
        Ok(value::map(d))
    });

    add(m, "randAlphaNum", |a| {
        Ok(string(random_string(to_i64(last(a)), ALNUM)))
    });
    add(m, "randAlpha", |a| {
        Ok(string(random_string(to_i64(last(a)), ALPHA)))
    });
    add(m, "randNumeric", |a| {
        Ok(string(random_string(to_i64(last(a)), DIGITS)))
    });
    add(m, "randAscii", |a| {
        Ok(string(random_string(to_i64(last(a)), ASCII)))
    });
    add(m, "randInt", |a| {
        let (lo, hi) = (to_i64(arg(a, 0)), to_i64(arg(a, 1)));
        let span = (hi - lo).max(1) as u64;
        Ok(Value::Int(lo + (next_random() % span) as i64))
    });
    add(m, "uuidv4", |_| {
        let (a, b) = (next_random(), next_random());
        let hex = format!("{a:016x}{b:016x}");
        Ok(string(format!(
            "{}-{}-4{}-a{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[13..16],
            &hex[17..20],
            &hex[20..32]
        )))
    });
    add(m, "derivePassword", |a| {
        Ok(string(
            &hex::encode(Sha256::digest(
                a.iter()
                    .map(strval)
                    .collect::<Vec<_>>()
                    .join("/")
                    .as_bytes(),
            ))[..16],
        ))
    });
    add(m, "htpasswd", |a| {
        Ok(string(format!(
            "{}:$2a$10${}",
            str_arg(arg(a, 0)),
            &hex::encode(Sha256::digest(str_arg(arg(a, 1)).as_bytes()))[..53]
        )))
    });
    for name in [
        "genCA",
        "genCAWithKey",
        "genSelfSignedCert",
        "genSelfSignedCertWithKey",
    ] {
        add(m, name, |a| Ok(fake_cert(&str_arg(arg(a, 0)))));
    }
    for name in ["genSignedCert", "genSignedCertWithKey", "buildCustomCert"] {
        add(m, name, |a| Ok(fake_cert(&str_arg(arg(a, 0)))));
    }
    // A placeholder with the PEM type Sprig's key would have (no real key is generated).
    add(m, "genPrivateKey", |a| {
        let kind = match str_arg(arg(a, 0)).as_str() {
            "rsa" => "RSA PRIVATE KEY",
            "dsa" => "DSA PRIVATE KEY",
            "ecdsa" => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        Ok(string(fake_pem(kind, "seal")))
    });
    add(m, "encryptAES", |a| {
        Ok(string(base64_encode(str_arg(arg(a, 1)).as_bytes())))
    });
    add(m, "decryptAES", |a| {
        let bytes = base64_decode(&str_arg(arg(a, 1))).unwrap_or_default();
        Ok(string(String::from_utf8_lossy(&bytes)))
    });

    add(m, "now", |_| Ok(Value::Int(0)));
    add(m, "unixEpoch", |a| Ok(string(to_i64(last(a)).to_string())));
    add(m, "date", |a| {
        Ok(string(go_date(&str_arg(arg(a, 0)), to_i64(arg(a, 1)))))
    });
    add(m, "dateInZone", |a| {
        Ok(string(go_date(&str_arg(arg(a, 0)), to_i64(arg(a, 1)))))
    });
    add(m, "htmlDate", |a| {
        Ok(string(go_date("2006-01-02", to_i64(last(a)))))
    });
    add(m, "htmlDateInZone", |a| {
        Ok(string(go_date("2006-01-02", to_i64(arg(a, 0)))))
    });
    add(m, "toDate", |a| {
        Ok(Value::Int(
            parse_go_date(&str_arg(arg(a, 0)), &str_arg(arg(a, 1))).unwrap_or(-62_135_596_800),
        ))
    });
    add(m, "mustToDate", |a| {
        let (layout, text) = (str_arg(arg(a, 0)), str_arg(arg(a, 1)));
        parse_go_date(&layout, &text)
            .map(Value::Int)
            .ok_or_else(|| error("mustToDate", format!("parsing time {text:?} as {layout:?}")))
    });
    // Dates are Unix seconds here; a modifier that is not a Go duration leaves the date.
    add(m, "dateModify", |a| {
        let date = to_i64(arg(a, 1));
        Ok(Value::Int(match parse_go_duration(&str_arg(arg(a, 0))) {
            Some(nanos) => date.saturating_add(nanos / 1_000_000_000),
            None => date,
        }))
    });
    add(m, "mustDateModify", |a| {
        let modifier = str_arg(arg(a, 0));
        let nanos = parse_go_duration(&modifier).ok_or_else(|| {
            error(
                "mustDateModify",
                format!("time: invalid duration {modifier:?}"),
            )
        })?;
        Ok(Value::Int(
            to_i64(arg(a, 1)).saturating_add(nanos / 1_000_000_000),
        ))
    });
    add(m, "ago", |_| Ok(string("0s")));
    // Sprig takes seconds as a string or an int64; anything else (a template's `int`) is 0.
    add(m, "duration", |a| {
        let secs = match last(a) {
            Value::String(s) => s.trim().parse::<i64>().unwrap_or(0),
            _ => 0,
        };
        Ok(string(go_duration(secs.saturating_mul(1_000_000_000))))
    });
    add(m, "durationRound", |a| {
        let nanos = match last(a) {
            Value::String(s) => parse_go_duration(s).unwrap_or(0),
            _ => 0,
        };
        Ok(string(duration_round(nanos)))
    });
}

/// Helm's `fromYaml`: a map, or `{Error: message}` when the text is not a YAML map.
pub fn from_yaml_map(text: &str) -> Value {
    let err = |msg: String| {
        let mut d = Map::new();
        d.insert("Error".into(), string(msg));
        value::map(d)
    };
    match yaml::parse_document(text) {
        Ok(y @ yaml::Yaml::Map(_)) => from_yaml(&y),
        Ok(yaml::Yaml::Null) => value::empty_map(),
        Ok(_) => err("error unmarshaling JSON: json: cannot unmarshal into Go value of type map[string]interface {}".into()),
        Err(e) => err(format!("error converting YAML to JSON: yaml: {}", yaml_message(&e.message))),
    }
}

/// A YAML error's message without our position prefix (go-yaml's has none for most errors).
fn yaml_message(message: &str) -> &str {
    let rest = message.strip_prefix("error: ").unwrap_or(message);
    match rest.strip_prefix("line ") {
        Some(after) => after
            .split_once(": ")
            .filter(|(pos, _)| pos.contains("column"))
            .map(|(_, m)| m)
            .unwrap_or(rest),
        None => rest,
    }
}

/// Go's `time.Duration.String` of `nanos`.
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        // Below a second: ns, µs or ms with a fraction.
        let (unit, div) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&fraction(u, div));
        out.push_str(unit);
    } else {
        let secs = u / 1_000_000_000;
        let (h, m) = (secs / 3600, secs / 60 % 60);
        if h > 0 {
            let _ = write!(out, "{h}h");
        }
        if h > 0 || m > 0 {
            let _ = write!(out, "{m}m");
        }
        out.push_str(&fraction(u % 60_000_000_000, 1_000_000_000));
        out.push('s');
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// `n / div` with the fraction's trailing zeros dropped (`1.5`, `2`).
fn fraction(n: u64, div: u64) -> String {
    let whole = n / div;
    let frac = n % div;
    if frac == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Go's `time.ParseDuration`, in nanoseconds.
fn parse_go_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    Some(if neg { -(total as i64) } else { total as i64 })
}

/// Sprig's `durationRound`: the largest whole unit (`2h`, `3d`, `1mo`, `2y`).
fn duration_round(nanos: i64) -> String {
    const SECOND: u64 = 1_000_000_000;
    const MINUTE: u64 = 60 * SECOND;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    const MONTH: u64 = 30 * DAY;
    const YEAR: u64 = 365 * DAY;
    let u = nanos.unsigned_abs();
    let (n, unit) = match u {
        u if u > YEAR => (u / YEAR, "y"),
        u if u > MONTH => (u / MONTH, "mo"),
        u if u > DAY => (u / DAY, "d"),
        u if u > HOUR => (u / HOUR, "h"),
        u if u > MINUTE => (u / MINUTE, "m"),
        u if u > SECOND => (u / SECOND, "s"),
        _ => return "0s".into(),
    };
    format!("{}{n}{unit}", if nanos < 0 { "-" } else { "" })
}

/// Go's `time.ParseInLocation(layout, text, time.Local)` for numeric layouts and month names,
/// in UTC: Unix seconds, or None when `text` does not fit `layout`.
fn parse_go_date(layout: &str, text: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (mut year, mut month, mut day, mut hour, mut minute, mut second) =
        (1i64, 1i64, 1i64, 0i64, 0i64, 0i64);
    let mut l = layout;
    let mut t = text;
    let number = |t: &mut &str, digits: usize| -> Option<i64> {
        let n: i64 = t.get(..digits)?.parse().ok()?;
        *t = &t[digits..];
        Some(n)
    };
    while !l.is_empty() {
        if let Some(r) = l.strip_prefix("2006") {
            year = number(&mut t, 4)?;
            l = r;
        } else if let Some(r) = l.strip_prefix("Jan") {
            let i = MONTHS.iter().position(|m| t.starts_with(m))?;
            month = i as i64 + 1;
            t = &t[3..];
            l = r;
        } else {
            let (token, r) = l.split_at(2.min(l.len()));
            let slot = match token {
                "01" => Some(&mut month),
                "02" => Some(&mut day),
                "15" => Some(&mut hour),
                "04" => Some(&mut minute),
                "05" => Some(&mut second),
                _ => None,
            };
            match slot {
                Some(slot) => {
                    *slot = number(&mut t, 2)?;
                    l = r;
                }
                None => {
                    let c = l.chars().next()?;
                    t = t.strip_prefix(c)?;
                    l = &l[c.len_utf8()..];
                }
            }
        }
    }
    if !t.is_empty() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// BurntSushi/toml's encoding (what Sprig's `toToml` uses) of a map: plain keys first, then
/// each table as `[name]` with its entries indented.
fn to_toml(v: &Value) -> String {
    let mut out = String::new();
    if let Value::Map(m) = v {
        toml_table(&mut out, &m.snapshot(), "", 0);
    }
    out
}

fn toml_table(out: &mut String, m: &Map, prefix: &str, depth: usize) {
    let indent = "  ".repeat(depth);
    for (k, v) in m {
        if !matches!(v, Value::Map(_) | Value::Nil) {
            let _ = writeln!(out, "{indent}{} = {}", toml_key(k), toml_value(v));
        }
    }
    for (k, v) in m {
        if let Value::Map(inner) = v {
            let name = if prefix.is_empty() {
                toml_key(k)
            } else {
                format!("{prefix}.{}", toml_key(k))
            };
            let inner_indent = "  ".repeat(depth);
            let _ = writeln!(out, "\n{inner_indent}[{name}]");
            toml_table(out, &inner.snapshot(), &name, depth + 1);
        }
    }
}

fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

fn toml_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{:?}", s.as_ref()),
        Value::Float(f) if f.fract() == 0.0 && f.is_finite() => format!("{f:.1}"),
        Value::List(items) => format!(
            "[{}]",
            items
                .items()
                .iter()
                .map(toml_value)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => crate::format::go_string(other),
    }
}

fn from_json_map(text: &str) -> Value {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v @ serde_json::Value::Object(_)) => from_json_value(&v),
        Ok(_) => {
            let mut d = Map::new();
            d.insert("Error".into(), string("json: cannot unmarshal into a map"));
            value::map(d)
        }
        Err(e) => {
            let mut d = Map::new();
            d.insert("Error".into(), string(e.to_string()));
            value::map(d)
        }
    }
}

/// JSON as Go's `json.Unmarshal` into `interface{}` gives it: every number a float64.
fn from_json_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => string(s),
        serde_json::Value::Array(items) => list(items.iter().map(from_json_value).collect()),
        serde_json::Value::Object(m) => value::map(
            m.iter()
                .map(|(k, v)| (k.as_str().into(), from_json_value(v)))
                .collect(),
        ),
    }
}

/// Standard base64, padding optional when decoding (what Sprig and docker config files use).
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    base64::Engine::encode(&BASE64, data)
}

/// Standard base64 (padding optional); None when malformed.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    base64::Engine::decode(&BASE64, text).ok()
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// SHA-1 (for Sprig's `sha1sum` only; nothing here relies on it for security).
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, word) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
    }
    out
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const DIGITS: &[u8] = b"0123456789";
const ASCII: &[u8] =
    b"!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";

thread_local! {
    static RANDOM: Cell<u64> = const { Cell::new(SEED) };
}

const SEED: u64 = 0x5EA1_5EA1_5EA1_5EA1;

/// Restart the deterministic generator (at the start of every chart render).
pub fn reset_random() {
    RANDOM.with(|r| r.set(SEED));
}

fn next_random() -> u64 {
    RANDOM.with(|r| {
        // xorshift64*
        let mut x = r.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

fn random_string(n: i64, alphabet: &[u8]) -> String {
    (0..n.clamp(0, 1 << 20))
        .map(|_| alphabet[(next_random() % alphabet.len() as u64) as usize] as char)
        .collect()
}

/// A stand-in for a generated certificate: `{Cert, Key}` in PEM armour, marked as fake.
fn fake_cert(subject: &str) -> Value {
    let mut d = Map::new();
    d.insert("Cert".into(), string(fake_pem("CERTIFICATE", subject)));
    d.insert("Key".into(), string(fake_pem("RSA PRIVATE KEY", subject)));
    value::map(d)
}

fn fake_pem(kind: &str, subject: &str) -> String {
    let body = base64_encode(format!("seal scan placeholder for {subject}").as_bytes());
    format!("-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n")
}

/// Format Unix time `t` (UTC) with a Go layout (`2006-01-02T15:04:05Z07:00`).
fn go_date(layout: &str, t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (secs / 3600, secs / 60 % 60, secs % 60);
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    let month_name = MONTHS[(month - 1) as usize];
    let day_name = DAYS[days.rem_euclid(7) as usize];
    let tokens: [(&str, String); 25] = [
        ("2006", format!("{year:04}")),
        ("January", month_name.to_string()),
        ("Monday", day_name.to_string()),
        ("Z07:00", "Z".into()),
        ("-07:00", "+00:00".into()),
        ("-0700", "+0000".into()),
        ("Jan", month_name[..3].to_string()),
        ("Mon", day_name[..3].to_string()),
        ("MST", "UTC".into()),
        ("01", format!("{month:02}")),
        ("02", format!("{day:02}")),
        ("_2", format!("{day:>2}")),
        ("15", format!("{hour:02}")),
        ("03", format!("{:02}", (hour + 11) % 12 + 1)),
        ("04", format!("{minute:02}")),
        ("05", format!("{second:02}")),
        ("06", format!("{:02}", year % 100)),
        ("PM", if hour < 12 { "AM" } else { "PM" }.into()),
        ("pm", if hour < 12 { "am" } else { "pm" }.into()),
        ("Z0700", "Z".into()),
        ("1", month.to_string()),
        ("2", day.to_string()),
        ("3", ((hour + 11) % 12 + 1).to_string()),
        ("4", minute.to_string()),
        ("5", second.to_string()),
    ];
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        for (token, value) in &tokens {
            if let Some(after) = rest.strip_prefix(token) {
                out.push_str(value);
                rest = after;
                continue 'outer;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            let _ = write!(out, "{c}");
        }
        rest = chars.as_str();
    }
    out
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_base64() {
        assert_eq!(
            hex::encode(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("a$"), None);
    }

    #[test]
    fn random_is_deterministic() {
        reset_random();
        let a = random_string(10, ALNUM);
        reset_random();
        assert_eq!(random_string(10, ALNUM), a);
        assert_eq!(a.len(), 10);
    }

    #[test]
    fn dates() {
        assert_eq!(
            go_date("2006-01-02T15:04:05Z07:00", 0),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(go_date("Jan 2, 2006", 86_400 * 366), "Jan 2, 1971");
    }

    #[test]
    fn from_yaml_errors_are_maps() {
        let v = from_yaml_map("[1, 2]");
        assert!(v.field("Error").is_some());
        assert_eq!(from_yaml_map(""), value::empty_map());
    }
}
