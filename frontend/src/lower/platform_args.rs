//! BuildKit's automatic platform args and Sealer's `ARCH`: TARGET* name the platform being
//! built, BUILD* the machine that builds, `ARCH` the target's architecture. A declared
//! `ARG TARGETARCH` without a default gets this value, so a RUN sees it (and its key has it).

use seal_llb::Platform;

/// The value of automatic arg `name` when building for `target`; `None` for any other name.
pub(super) fn value(name: &str, target: &Platform) -> Option<String> {
    let build = Platform::host();
    match name {
        "ARCH" | "TARGETARCH" => Some(target.architecture.clone()),
        "TARGETOS" => Some(target.os.clone()),
        "TARGETVARIANT" => Some(target.variant_or_empty().to_string()),
        "TARGETPLATFORM" => Some(target.to_string()),
        "BUILDARCH" => Some(build.architecture),
        "BUILDOS" => Some(build.os),
        "BUILDVARIANT" => Some(build.variant_or_empty().to_string()),
        "BUILDPLATFORM" => Some(build.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_and_build_args() {
        let arm = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(
            value("TARGETPLATFORM", &arm).as_deref(),
            Some("linux/arm/v7")
        );
        assert_eq!(value("TARGETVARIANT", &arm).as_deref(), Some("v7"));
        assert_eq!(value("ARCH", &arm).as_deref(), Some("arm"));
        assert_eq!(
            value("BUILDPLATFORM", &arm),
            Some(Platform::host().to_string())
        );
        assert_eq!(value("BUILDVARIANT", &arm).as_deref(), Some(""));
        assert_eq!(value("HOME", &arm), None);
    }
}
