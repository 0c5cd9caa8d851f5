// The version reported by --version, SHOW VERSION and the admin console's server_version.
public let switchyardVersion = "0.2.0"
