public import GatewayEventLoop

/// The product's seeded generator, so that a property test's failure reproduces from its seed.
public typealias SplitMix64 = GatewayEventLoop.SplitMix64
