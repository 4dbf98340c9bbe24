extension OpenAPIDocument {
    /// The document a gateway serves, true to its `auth.mode`: with `apiKey` it is `openapi/gateway.yaml`;
    /// with `none` every operation admits callers without a key, so the document says so
    /// (`security: []`) instead of declaring a requirement the gateway does not enforce.
    public static func served(requiringClientKey: Bool) -> [UInt8] {
        requiringClientKey ? bytes : Array(yaml.replacing(clientKeyRequirement, with: noRequirement).utf8)
    }

    /// The top-level requirement in `openapi/gateway.yaml`; a test keeps it there exactly once.
    static let clientKeyRequirement = "\nsecurity:\n  - bearerAuth: []\n  - apiKeyAuth: []\n"
    static let noRequirement = "\n# Served by a gateway with `auth.mode: none`: no client key is needed.\nsecurity: []\n"
}
