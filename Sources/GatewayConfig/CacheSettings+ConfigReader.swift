// The `cache` section: its keys and ranges.

extension CacheSettings {
    static let configKeys = ["maxBytes", "listTTLMs", "activeDetailTTLMs", "terminalDetailTTLMs", "staleIfErrorMs", "indexMaxBytes"]

    static func read(_ fields: ConfigFieldReader.Fields?, with reader: inout ConfigFieldReader) -> CacheSettings {
        let defaults = CacheSettings()
        guard let fields else { return defaults }
        let day = 86_400_000
        return CacheSettings(
            maxBytes: reader.integer(fields, "maxBytes", 0...68_719_476_736, default: defaults.maxBytes),
            listTTLMs: reader.integer(fields, "listTTLMs", 0...day, default: defaults.listTTLMs),
            activeDetailTTLMs: reader.integer(fields, "activeDetailTTLMs", 0...day, default: defaults.activeDetailTTLMs),
            terminalDetailTTLMs: reader.integer(fields, "terminalDetailTTLMs", 0...day, default: defaults.terminalDetailTTLMs),
            staleIfErrorMs: reader.integer(fields, "staleIfErrorMs", 0...day, default: defaults.staleIfErrorMs),
            indexMaxBytes: reader.integer(fields, "indexMaxBytes", 1_048_576...68_719_476_736, default: defaults.indexMaxBytes)
        )
    }
}
