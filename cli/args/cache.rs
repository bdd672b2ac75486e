//! `--cache-to` / `--cache-from` in BuildKit's syntax: comma-separated `key=value` pairs,
//! `type=registry|local|s3` first or anywhere; a bare reference is `type=registry,ref=...`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use seal_engine::remote_cache::{CacheExport, CacheLocation, CacheMode};
use seal_store::Reference;

/// Parse one `--cache-to` value.
pub fn parse_cache_to(value: &str) -> Result<CacheExport, String> {
    let mut attrs = attributes(value)?;
    let location = location(&mut attrs, "dest")?;
    let mode = match attrs.remove("mode").as_deref() {
        None | Some("min") => CacheMode::Min,
        Some("max") => CacheMode::Max,
        Some(other) => return Err(format!("mode must be min or max, not `{other}`")),
    };
    let ignore_error = match attrs.remove("ignore-error").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(format!("ignore-error must be true or false, not `{other}`")),
    };
    refuse_rest(attrs)?;
    Ok(CacheExport {
        location,
        mode,
        ignore_error,
    })
}

/// Parse one `--cache-from` value.
pub fn parse_cache_from(value: &str) -> Result<CacheLocation, String> {
    let mut attrs = attributes(value)?;
    let location = location(&mut attrs, "src")?;
    refuse_rest(attrs)?;
    Ok(location)
}

fn attributes(value: &str) -> Result<BTreeMap<String, String>, String> {
    if !value.contains('=') {
        // BuildKit's shorthand: `--cache-from REF`.
        return Ok([
            ("type".to_string(), "registry".to_string()),
            ("ref".to_string(), value.to_string()),
        ]
        .into());
    }
    let mut attrs = BTreeMap::new();
    for part in value.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not key=value"))?;
        if attrs
            .insert(k.trim().to_string(), v.trim().to_string())
            .is_some()
        {
            return Err(format!("`{k}` is given twice"));
        }
    }
    Ok(attrs)
}

/// The location of `type=...`; `dir_key` is `dest` for exports and `src` for imports.
fn location(attrs: &mut BTreeMap<String, String>, dir_key: &str) -> Result<CacheLocation, String> {
    let kind = attrs
        .remove("type")
        .ok_or("name the cache's type: type=registry, type=local or type=s3")?;
    match kind.as_str() {
        "registry" => {
            let name = attrs
                .remove("ref")
                .ok_or("type=registry needs ref=REGISTRY/REPOSITORY[:TAG]")?;
            let reference =
                Reference::parse_container_image(&name).map_err(|e| format!("ref={name}: {e}"))?;
            if reference.digest.is_some() {
                return Err(format!(
                    "ref={name}: a cache is named by a tag, not a digest"
                ));
            }
            Ok(CacheLocation::Registry(reference))
        }
        "local" => {
            let dir = attrs
                .remove(dir_key)
                .filter(|d| !d.is_empty())
                .ok_or_else(|| format!("type=local needs {dir_key}=DIR"))?;
            let tag = attrs.remove("tag").unwrap_or_else(|| "latest".into());
            Ok(CacheLocation::Local {
                dir: PathBuf::from(dir),
                tag,
            })
        }
        "s3" => {
            let bucket = attrs
                .remove("bucket")
                .filter(|b| !b.is_empty())
                .ok_or("type=s3 needs bucket=NAME")?;
            // As BuildKit: the region from the attribute, else the AWS environment.
            let region = attrs
                .remove("region")
                .or_else(|| std::env::var("AWS_REGION").ok())
                .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                .filter(|r| !r.is_empty())
                .ok_or("type=s3 needs region=REGION (or AWS_REGION)")?;
            let endpoint_url = attrs.remove("endpoint_url");
            if let Some(url) = &endpoint_url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!("endpoint_url={url}: not an http(s) URL"));
                }
            }
            let prefix = attrs.remove("prefix").unwrap_or_default();
            let name = attrs.remove("name").unwrap_or_else(|| "latest".into());
            if name.is_empty() || name.contains('/') {
                return Err(format!("name={name}: a cache name is one path element"));
            }
            Ok(CacheLocation::S3 {
                bucket,
                region,
                endpoint_url,
                prefix,
                name,
            })
        }
        other => Err(format!(
            "unknown cache type `{other}` (seal has registry, local and s3)"
        )),
    }
}

fn refuse_rest(attrs: BTreeMap<String, String>) -> Result<(), String> {
    match attrs.keys().next() {
        None => Ok(()),
        Some(k) => Err(format!(
            "`{k}` is not an attribute seal's cache understands"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildkit_syntax() {
        let to = parse_cache_to("type=registry,ref=127.0.0.1:5000/c:main,mode=max").unwrap();
        assert_eq!(to.mode, CacheMode::Max);
        assert!(!to.ignore_error);
        assert_eq!(to.location.to_string(), "127.0.0.1:5000/c:main");
        let to = parse_cache_to("type=local,dest=/tmp/c,ignore-error=true").unwrap();
        assert_eq!(to.mode, CacheMode::Min);
        assert!(to.ignore_error);
        assert_eq!(
            to.location,
            CacheLocation::Local {
                dir: "/tmp/c".into(),
                tag: "latest".into()
            }
        );
        let from = parse_cache_from("127.0.0.1:5000/c:main").unwrap();
        assert!(matches!(from, CacheLocation::Registry(_)));
        assert!(parse_cache_from("type=local,src=/x,tag=t").is_ok());
        let s3 = parse_cache_to(
            "type=s3,bucket=b,region=eu-west-1,endpoint_url=http://127.0.0.1:9000,prefix=ci/,mode=max",
        )
        .unwrap();
        assert_eq!(
            s3.location,
            CacheLocation::S3 {
                bucket: "b".into(),
                region: "eu-west-1".into(),
                endpoint_url: Some("http://127.0.0.1:9000".into()),
                prefix: "ci/".into(),
                name: "latest".into(),
            }
        );
    }

    #[test]
    fn bad_values_are_clear_errors() {
        for (value, says) in [
            ("type=registry", "needs ref="),
            ("type=local,src=/x", "needs dest="),
            ("type=registry,ref=r/c,mode=all", "min or max"),
            ("type=registry,ref=r/c,ignore-error=yes", "true or false"),
            ("type=registry,ref=r/c,compression=zstd", "`compression`"),
            ("type=gha", "unknown cache type"),
            ("type=s3,region=r", "needs bucket="),
            (
                "type=s3,bucket=b,region=r,endpoint_url=ftp://x",
                "not an http(s) URL",
            ),
            ("type=s3,bucket=b,region=r,name=a/b", "one path element"),
            ("ref=r/c", "name the cache's type"),
            ("type=registry,ref=r/c,ref=r/d", "given twice"),
        ] {
            let err = parse_cache_to(value).unwrap_err();
            assert!(err.contains(says), "{value}: {err}");
        }
        assert!(parse_cache_from("type=local,dest=/x")
            .unwrap_err()
            .contains("needs src="));
    }
}
