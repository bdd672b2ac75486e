//! The resources `--cloud-provider alicloud` creates, lists and deletes, one function per
//! API call (Sealer's Alibaba provider makes the same kind of sequence: a VPC and vSwitch, a
//! security group and its rule, RunInstances, DescribeInstances, DeleteInstances, ...).

use serde_json::Value;

use super::api::{at, tag_params, tags_of, text_at, ApiError, Client, Service};

/// An instance as DescribeInstances shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub id: String,
    /// `Pending`, `Starting`, `Running`, `Stopping`, `Stopped`.
    pub status: String,
    pub public_ip: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// A tagged resource other than an instance: its id, status and tags.
#[derive(Debug, Clone, PartialEq)]
pub struct Tagged {
    pub id: String,
    pub status: String,
    pub tags: Vec<(String, String)>,
}

fn with_region<'a>(client: &Client, params: &[(&'a str, String)]) -> Vec<(&'a str, String)> {
    let mut all = vec![("RegionId", client.region().to_string())];
    all.extend(params.iter().cloned());
    all
}

fn with_tags<'a>(
    mut params: Vec<(&'a str, String)>,
    owned: &'a [(String, String)],
) -> Vec<(&'a str, String)> {
    params.extend(owned.iter().map(|(k, v)| (k.as_str(), v.clone())));
    params
}

/// The newest system image whose id starts with `prefix` (e.g. `ubuntu_24_04_x64`).
pub fn newest_system_image(client: &Client, prefix: &str) -> Result<Option<String>, ApiError> {
    let images = client.describe_all(
        Service::Ecs,
        "DescribeImages",
        &with_region(
            client,
            &[
                ("ImageOwnerAlias", "system".into()),
                ("OSType", "linux".into()),
                ("Architecture", "x86_64".into()),
                ("Status", "Available".into()),
                // A fuzzy (substring) search: the prefix is checked below.
                ("ImageName", prefix.into()),
            ],
        ),
        "Images/Image",
    )?;
    let mut found: Vec<(String, String)> = images
        .iter()
        .filter_map(|i| {
            let id = i["ImageId"].as_str()?;
            id.starts_with(prefix).then(|| {
                (
                    i["CreationTime"].as_str().unwrap_or_default().to_string(),
                    id.to_string(),
                )
            })
        })
        .collect();
    found.sort();
    Ok(found.pop().map(|(_, id)| id))
}

/// The first zone (by id) where `instance_type` can be bought pay-as-you-go.
pub fn zone_for(client: &Client, instance_type: &str) -> Result<Option<String>, ApiError> {
    let answer = client.call(
        Service::Ecs,
        "DescribeZones",
        &with_region(client, &[("InstanceChargeType", "PostPaid".into())]),
    )?;
    let mut zones: Vec<String> = at(&answer, "Zones/Zone")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|z| {
            at(z, "AvailableInstanceTypes/InstanceTypes")
                .and_then(Value::as_array)
                .is_some_and(|ts| ts.iter().any(|t| t.as_str() == Some(instance_type)))
        })
        .filter_map(|z| z["ZoneId"].as_str().map(str::to_string))
        .collect();
    zones.sort();
    Ok(zones.into_iter().next())
}

pub fn create_vpc(
    client: &Client,
    name: &str,
    tags: &[(String, String)],
) -> Result<String, ApiError> {
    let owned = tag_params(tags);
    let params = with_tags(
        with_region(
            client,
            &[
                ("CidrBlock", "172.16.0.0/16".into()),
                ("VpcName", name.into()),
                ("Description", "seal build host network".into()),
                ("ClientToken", format!("{name}-vpc")),
            ],
        ),
        &owned,
    );
    client.call_for(Service::Vpc, "CreateVpc", &params, "VpcId")
}

pub fn create_vswitch(
    client: &Client,
    vpc: &str,
    zone: &str,
    name: &str,
    tags: &[(String, String)],
) -> Result<String, ApiError> {
    let owned = tag_params(tags);
    let params = with_tags(
        with_region(
            client,
            &[
                ("VpcId", vpc.into()),
                ("ZoneId", zone.into()),
                ("CidrBlock", "172.16.0.0/24".into()),
                ("VSwitchName", name.into()),
                ("ClientToken", format!("{name}-vsw")),
            ],
        ),
        &owned,
    );
    client.call_for(Service::Vpc, "CreateVSwitch", &params, "VSwitchId")
}

/// A VPC's status (`Pending`, `Available`); `None` once it is gone.
pub fn vpc_status(client: &Client, id: &str) -> Result<Option<String>, ApiError> {
    let found = client.describe_all(
        Service::Vpc,
        "DescribeVpcs",
        &with_region(client, &[("VpcId", id.into())]),
        "Vpcs/Vpc",
    )?;
    Ok(found
        .first()
        .and_then(|v| v["Status"].as_str())
        .map(str::to_string))
}

/// A vSwitch's status (`Pending`, `Available`); `None` once it is gone.
pub fn vswitch_status(client: &Client, id: &str) -> Result<Option<String>, ApiError> {
    let found = client.describe_all(
        Service::Vpc,
        "DescribeVSwitches",
        &with_region(client, &[("VSwitchId", id.into())]),
        "VSwitches/VSwitch",
    )?;
    Ok(found
        .first()
        .and_then(|v| v["Status"].as_str())
        .map(str::to_string))
}

pub fn create_security_group(
    client: &Client,
    vpc: &str,
    name: &str,
    tags: &[(String, String)],
) -> Result<String, ApiError> {
    let owned = tag_params(tags);
    let params = with_tags(
        with_region(
            client,
            &[
                ("VpcId", vpc.into()),
                ("SecurityGroupName", name.into()),
                (
                    "Description",
                    "seal build host: SSH from the builder only".into(),
                ),
                ("SecurityGroupType", "normal".into()),
                ("ClientToken", format!("{name}-sg")),
            ],
        ),
        &owned,
    );
    client.call_for(
        Service::Ecs,
        "CreateSecurityGroup",
        &params,
        "SecurityGroupId",
    )
}

/// Admit TCP port 22 from `cidr` only.
pub fn authorize_ssh(client: &Client, group: &str, cidr: &str) -> Result<(), ApiError> {
    let source = if cidr.contains(':') {
        "Ipv6SourceCidrIp"
    } else {
        "SourceCidrIp"
    };
    let params = with_region(
        client,
        &[
            ("SecurityGroupId", group.into()),
            ("IpProtocol", "tcp".into()),
            ("PortRange", "22/22".into()),
            (source, cidr.into()),
            ("Policy", "accept".into()),
            ("NicType", "intranet".into()),
            ("Description", "seal: SSH from the builder".into()),
        ],
    );
    client.call(Service::Ecs, "AuthorizeSecurityGroup", &params)?;
    Ok(())
}

/// What RunInstances is told.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    pub image: &'a str,
    pub instance_type: &'a str,
    pub group: &'a str,
    pub vswitch: &'a str,
    pub name: &'a str,
    /// base64 cloud-config.
    pub user_data: &'a str,
    /// ISO 8601: Alibaba releases the instance itself then (at least 30 min ahead).
    pub auto_release: &'a str,
    pub tags: &'a [(String, String)],
}

/// One pay-as-you-go instance with a public address (InternetMaxBandwidthOut); its id.
pub fn run_instance(client: &Client, launch: &Launch) -> Result<String, ApiError> {
    let owned = tag_params(launch.tags);
    let params = with_tags(
        with_region(
            client,
            &[
                ("ImageId", launch.image.into()),
                ("InstanceType", launch.instance_type.into()),
                ("SecurityGroupId", launch.group.into()),
                ("VSwitchId", launch.vswitch.into()),
                ("InstanceName", launch.name.into()),
                ("InstanceChargeType", "PostPaid".into()),
                ("InternetChargeType", "PayByTraffic".into()),
                ("InternetMaxBandwidthOut", "100".into()),
                ("SystemDisk.Category", "cloud_essd".into()),
                ("SystemDisk.Size", "40".into()),
                ("UserData", launch.user_data.into()),
                ("AutoReleaseTime", launch.auto_release.into()),
                ("Amount", "1".into()),
                ("ClientToken", format!("{}-run", launch.name)),
            ],
        ),
        &owned,
    );
    client.call_for(
        Service::Ecs,
        "RunInstances",
        &params,
        "InstanceIdSets/InstanceIdSet/0",
    )
}

fn instance(item: &Value) -> Instance {
    Instance {
        id: item["InstanceId"].as_str().unwrap_or_default().to_string(),
        status: item["Status"].as_str().unwrap_or_default().to_string(),
        public_ip: text_at(item, "PublicIpAddress/IpAddress/0")
            .or_else(|| text_at(item, "EipAddress/IpAddress"))
            .filter(|ip| !ip.is_empty())
            .map(str::to_string),
        tags: tags_of(item),
    }
}

/// The instances with these ids.
pub fn describe_instances(client: &Client, ids: &[String]) -> Result<Vec<Instance>, ApiError> {
    let ids = serde_json::to_string(ids).unwrap_or_default();
    let found = client.describe_all(
        Service::Ecs,
        "DescribeInstances",
        &with_region(client, &[("InstanceIds", ids)]),
        "Instances/Instance",
    )?;
    Ok(found.iter().map(instance).collect())
}

/// Every instance with the tag `key`.
pub fn instances_tagged(client: &Client, key: &str) -> Result<Vec<Instance>, ApiError> {
    let found = client.describe_all(
        Service::Ecs,
        "DescribeInstances",
        &with_region(client, &[("Tag.1.Key", key.into())]),
        "Instances/Instance",
    )?;
    Ok(found.iter().map(instance).collect())
}

fn tagged(items: Vec<Value>, id: &str) -> Vec<Tagged> {
    items
        .iter()
        .map(|i| Tagged {
            id: i[id].as_str().unwrap_or_default().to_string(),
            status: i["Status"].as_str().unwrap_or("-").to_string(),
            tags: tags_of(i),
        })
        .collect()
}

/// How to list one kind of resource seal tags: the call, where its answer keeps the items,
/// and each item's id field.
pub struct Listing {
    service: Service,
    action: &'static str,
    items: &'static str,
    id: &'static str,
}

pub const SECURITY_GROUPS: Listing = Listing {
    service: Service::Ecs,
    action: "DescribeSecurityGroups",
    items: "SecurityGroups/SecurityGroup",
    id: "SecurityGroupId",
};
pub const VSWITCHES: Listing = Listing {
    service: Service::Vpc,
    action: "DescribeVSwitches",
    items: "VSwitches/VSwitch",
    id: "VSwitchId",
};
pub const VPCS: Listing = Listing {
    service: Service::Vpc,
    action: "DescribeVpcs",
    items: "Vpcs/Vpc",
    id: "VpcId",
};

/// The resources of `listing`'s kind tagged `key`, all pages.
pub fn tagged_with(client: &Client, listing: &Listing, key: &str) -> Result<Vec<Tagged>, ApiError> {
    let found = client.describe_all(
        listing.service,
        listing.action,
        &with_region(client, &[("Tag.1.Key", key.into())]),
        listing.items,
    )?;
    Ok(tagged(found, listing.id))
}

/// Release an instance whatever its state (`Force`).
pub fn delete_instance(client: &Client, id: &str) -> Result<(), ApiError> {
    let params = with_region(
        client,
        &[("InstanceId.1", id.into()), ("Force", "true".into())],
    );
    client.call(Service::Ecs, "DeleteInstances", &params)?;
    Ok(())
}

pub fn delete_security_group(client: &Client, id: &str) -> Result<(), ApiError> {
    let params = with_region(client, &[("SecurityGroupId", id.into())]);
    client.call(Service::Ecs, "DeleteSecurityGroup", &params)?;
    Ok(())
}

pub fn delete_vswitch(client: &Client, id: &str) -> Result<(), ApiError> {
    let params = with_region(client, &[("VSwitchId", id.into())]);
    client.call(Service::Vpc, "DeleteVSwitch", &params)?;
    Ok(())
}

pub fn delete_vpc(client: &Client, id: &str) -> Result<(), ApiError> {
    let params = with_region(client, &[("VpcId", id.into())]);
    client.call(Service::Vpc, "DeleteVpc", &params)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_read_their_public_address_and_tags() {
        let item: Value = serde_json::from_str(
            r#"{"InstanceId":"i-1","Status":"Running","PublicIpAddress":{"IpAddress":["47.1.2.3"]},
                "EipAddress":{"IpAddress":""},"Tags":{"Tag":[{"TagKey":"seal-build","TagValue":"b"}]}}"#,
        )
        .unwrap();
        let i = instance(&item);
        assert_eq!(
            (i.status.as_str(), i.public_ip.as_deref()),
            ("Running", Some("47.1.2.3"))
        );
        let item: Value = serde_json::from_str(
            r#"{"InstanceId":"i-2","Status":"Pending","PublicIpAddress":{"IpAddress":[]},"EipAddress":{"IpAddress":""}}"#,
        )
        .unwrap();
        assert_eq!(instance(&item).public_ip, None);
    }
}
