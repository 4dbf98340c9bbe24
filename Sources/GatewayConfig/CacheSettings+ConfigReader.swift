// The `cache` section: its keys and ranges.

extension CacheSettings {
    static let configKeys = ["maxBytes", "listTTLMs", "activeDetailTTLMs", "terminalDetailTTLMs", "staleIfErrorMs", "indexMaxBytes"]

    static func read(_ fields: ConfigFieldReader.Fields?, with reader: inout ConfigFieldReader) -> CacheSettings {
        let defaults = CacheSettings()
        guard let fields else { return defaults }
        let day = 86_400_000
        return CacheSettings(
            maxBytes: reader.integer(fields, "maxBytes", 0...68_719_476_736, default: defaults.maxBytes),
            listTTL: reader.duration(fields, "listTTLMs", milliseconds: 0...day, default: defaults.listTTL),
            activeDetailTTL: reader.duration(fields, "activeDetailTTLMs", milliseconds: 0...day, default: defaults.activeDetailTTL),
            terminalDetailTTL: reader.duration(fields, "terminalDetailTTLMs", milliseconds: 0...day, default: defaults.terminalDetailTTL),
            staleIfError: reader.duration(fields, "staleIfErrorMs", milliseconds: 0...day, default: defaults.staleIfError),
            indexMaxBytes: reader.integer(fields, "indexMaxBytes", 1_048_576...68_719_476_736, default: defaults.indexMaxBytes)
        )
    }
}
