//! Alibaba Cloud's RPC request signature, SignatureVersion 1.0 with HMAC-SHA1: the
//! parameters sorted by name and percent-encoded (RFC 3986: only `A-Za-z0-9-_.~` stay), the
//! string to sign `METHOD&%2F&encode(canonical query)`, its HMAC-SHA1 under
//! `AccessKeySecret&`, base64. HMAC and SHA-1 are the RustCrypto crates'.
//!
//! Documented at <https://www.alibabacloud.com/help/doc-detail/28139.htm> (ECS "Request
//! signatures") and <https://help.aliyun.com/en/sdk/product-overview/rpc-mechanism>.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Percent-encoding of everything but `A-Za-z0-9-_.~`, bytes of UTF-8 as `%XY` (upper-case
/// hex): a space is `%20` (not `+`), `*` is `%2A`, `~` stays.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `name=value&...` of `params` sorted by name, both encoded: the canonicalized query,
/// which is also the request's body or query as sent.
pub fn canonical_query(params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    sorted
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `METHOD&%2F&encode(canonical query)`.
pub fn string_to_sign(method: &str, params: &[(String, String)]) -> String {
    format!("{method}&%2F&{}", encode(&canonical_query(params)))
}

/// The `Signature` parameter of a request with `params` (all but `Signature` itself).
pub fn sign(method: &str, params: &[(String, String)], secret: &str) -> String {
    let key = format!("{secret}&");
    // HMAC takes keys of any length: new_from_slice cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(string_to_sign(method, params).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The DescribeRegions example of Alibaba's ECS signature documentation
    /// (https://www.alibabacloud.com/help/doc-detail/28139.htm, "Request signatures":
    /// AccessKeyId testid, AccessKeySecret testsecret, so the HMAC key is `testsecret&`).
    #[test]
    fn the_documented_describe_regions_example() {
        let p = params(&[
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Format", "XML"),
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("Version", "2014-05-26"),
            ("SignatureVersion", "1.0"),
        ]);
        assert_eq!(
            string_to_sign("GET", &p),
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML\
             %26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf\
             %26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        assert_eq!(
            sign("GET", &p, "testsecret"),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    /// The same example as Alibaba's older Chinese page printed it, with the parameter
    /// spelled `TimeStamp` (https://developer.aliyun.com/ask/210168, "API 签名机制(示例)"):
    /// its string to sign and signature `CT9X0VtwR86fNWSnsc6v8YGOjuE=`.
    #[test]
    fn the_older_documented_example_spelled_timestamp_differently() {
        let p = params(&[
            ("TimeStamp", "2016-02-23T12:46:24Z"),
            ("Format", "XML"),
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("Version", "2014-05-26"),
            ("SignatureVersion", "1.0"),
        ]);
        assert!(string_to_sign("GET", &p)
            .contains("%26SignatureVersion%3D1.0%26TimeStamp%3D2016-02-23T12%253A46%253A24Z%26"));
        assert_eq!(
            sign("GET", &p, "testsecret"),
            "CT9X0VtwR86fNWSnsc6v8YGOjuE="
        );
    }

    #[test]
    fn percent_encoding_edge_cases() {
        assert_eq!(encode("a b"), "a%20b");
        assert_eq!(encode("*"), "%2A");
        assert_eq!(encode("~-_.azAZ09"), "~-_.azAZ09");
        assert_eq!(encode("a+b=c&d/e:f"), "a%2Bb%3Dc%26d%2Fe%3Af");
        assert_eq!(encode("\"é"), "%22%C3%A9");
        assert_eq!(encode("[\"i-1\"]"), "%5B%22i-1%22%5D");
    }

    #[test]
    fn parameters_sort_by_name_and_the_method_counts() {
        let p = params(&[("b", "2"), ("B", "1"), ("a", "x y")]);
        assert_eq!(canonical_query(&p), "B=1&a=x%20y&b=2");
        assert_ne!(sign("GET", &p, "s"), sign("POST", &p, "s"));
        assert_ne!(sign("GET", &p, "s"), sign("GET", &p, "t"));
    }
}
