import Configuration

// The `auth` section: its keys and rules, and the cursor secret's environment fallback.

extension AuthSettings {
    static let configKeys = ["mode", "cursorSecret"]

    static func read(_ fields: ConfigFieldReader.Fields?, with reader: inout ConfigFieldReader) -> AuthSettings {
        var auth = AuthSettings()
        if let fields {
            if let mode: AuthMode = reader.enumeration(fields, "mode") {
                auth.mode = mode
            }
            if fields["cursorSecret"] != nil {
                if let secret = reader.string(fields, "cursorSecret") {
                    if let problem = ConfigurationRules.cursorSecretProblem(secret) {
                        reader.report(fields.path("cursorSecret"), fields.line(of: "cursorSecret"), problem)
                    } else {
                        auth.cursorSecret = secret
                        auth.cursorSecretSource = .configuration
                    }
                }
                return auth
            }
        }
        // The contract's fallback, read the swift-configuration way: key `gateway.cursorSecret` maps to the
        // environment variable GATEWAY_CURSOR_SECRET.
        let environmentReader = ConfigReader(provider: reader.environment)
        if let secret = environmentReader.string(forKey: "gateway.cursorSecret", isSecret: true), !secret.isEmpty {
            if let problem = ConfigurationRules.cursorSecretProblem(secret) {
                reader.report("auth.cursorSecret", nil, "taken from $\(AuthSettings.cursorSecretEnvironmentVariable): \(problem)")
            } else {
                auth.cursorSecret = secret
                auth.cursorSecretSource = .environment
            }
        }
        return auth
    }
}
