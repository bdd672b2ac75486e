//! `seal pull`, `seal push`, `seal tag`, `seal login`, `seal logout`: the registry client
//! lives in the store (`seal_store::registry`); this file picks names, reads the password and
//! prints.

use std::io::Read;
use std::path::Path;

use seal_store::registry::{auth, Client, Credentials};
use seal_store::{Platform, RegistryOptions};

use crate::args::{LoginArgs, LogoutArgs, PullArgs, PushArgs, TagArgs};
use crate::commands::{image_name, open_existing_store, open_store};
use crate::failure::Failure;

/// Run `seal pull`: prints the manifest digest.
pub fn pull(root: &Path, args: PullArgs, options: &RegistryOptions) -> Result<(), Failure> {
    let name = image_name(&args.name)?;
    let platform = match &args.platform {
        Some(p) => Platform::parse(p).map_err(Failure::Usage)?,
        None => Platform::host(),
    };
    let store = open_store(root)?;
    let mut client = Client::new(options.clone());
    eprintln!("pulling {name}");
    let report = client.pull(&store, &name, &platform, &mut |msg| eprintln!("{msg}"))?;
    eprintln!(
        "pulled {name}: {} blobs fetched, {} already present",
        report.transferred, report.skipped
    );
    println!("{}", report.manifest);
    Ok(())
}

/// Run `seal push`: prints the manifest digest.
pub fn push(root: &Path, args: PushArgs, options: &RegistryOptions) -> Result<(), Failure> {
    let name = image_name(&args.name)?;
    let store = open_existing_store(root)?;
    let mut client = Client::new(options.clone());
    eprintln!("pushing {name}");
    let report = client.push(&store, &name, &mut |msg| eprintln!("{msg}"))?;
    eprintln!(
        "pushed {name}: {} blobs uploaded, {} already in the registry",
        report.transferred, report.skipped
    );
    println!("{}", report.manifest);
    Ok(())
}

/// Run `seal tag`: every target names the source's manifest.
pub fn tag(root: &Path, args: TagArgs) -> Result<(), Failure> {
    let source = image_name(&args.source)?;
    let targets = args
        .targets
        .iter()
        .map(|t| image_name(t))
        .collect::<Result<Vec<_>, _>>()?;
    if !root.join("db").exists() {
        return Err(anyhow::anyhow!("no image named {source} in the store").into());
    }
    let store = open_store(root)?;
    let record = store
        .image(&source)?
        .ok_or_else(|| anyhow::anyhow!("no image named {source} in the store"))?;
    for target in &targets {
        store.set_image(target, &record.manifest)?;
        println!("tagged: {target}");
    }
    Ok(())
}

/// A registry as given on the command line: `host[:port]`, maybe with a scheme or a path.
fn registry_host(input: &str) -> Result<String, Failure> {
    let host = input
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(Failure::Usage(format!("invalid registry `{input}`")));
    }
    Ok(match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        h => h.into(),
    })
}

/// Run `seal login`: check the credentials against the registry, then save them.
pub fn login(args: LoginArgs, options: &RegistryOptions) -> Result<(), Failure> {
    let registry = registry_host(&args.registry)?;
    let password = match (args.password, args.password_stdin) {
        (Some(p), false) => p,
        (None, true) => {
            let mut p = String::new();
            std::io::stdin().read_to_string(&mut p)?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
        _ => {
            return Err(Failure::Usage(
                "give the password with -p PASSWORD or --password-stdin".into(),
            ))
        }
    };
    if password.is_empty() {
        return Err(Failure::Usage("the password is empty".into()));
    }
    let credentials = Credentials {
        username: args.username,
        password,
    };
    let mut client = Client::new(options.clone());
    client.check_login(&registry, credentials.clone())?;
    let file = auth::auth_file_for_write().ok_or_else(|| {
        anyhow::anyhow!(
            "nowhere to save credentials: set HOME, DOCKER_CONFIG or REGISTRY_AUTH_FILE"
        )
    })?;
    auth::save(&file, &registry, &credentials)
        .map_err(|e| anyhow::anyhow!("saving credentials to {}: {e}", file.display()))?;
    println!("Login Succeeded (credentials saved in {})", file.display());
    Ok(())
}

/// Run `seal logout`.
pub fn logout(args: LogoutArgs) -> Result<(), Failure> {
    let registry = registry_host(&args.registry)?;
    if auth::remove(&registry).map_err(|e| anyhow::anyhow!("removing credentials: {e}"))? {
        println!("Removed login credentials for {registry}");
        Ok(())
    } else {
        Err(anyhow::anyhow!("not logged in to {registry}").into())
    }
}
