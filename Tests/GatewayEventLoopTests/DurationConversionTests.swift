import GatewayEventLoop
import Testing

/// Configured durations reach the nanosecond timers and the `…Ms` keys without trapping.
@Suite("Duration conversions")
struct DurationConversionTests {
    @Test func nanosecondsAreExactWithinRangeAndSaturateOutside() {
        #expect(Duration.milliseconds(1500).saturatingNanoseconds == 1_500_000_000)
        #expect(Duration.nanoseconds(7).saturatingNanoseconds == 7)
        #expect(Duration.zero.saturatingNanoseconds == 0)
        #expect(Duration.milliseconds(-1).saturatingNanoseconds == 0)
        #expect(Duration.nanoseconds(-1).saturatingNanoseconds == 0)
        // About 585 years is where UInt64 nanoseconds end; Int64.max seconds is far past it.
        #expect(Duration.seconds(Int64.max).saturatingNanoseconds == .max)
        #expect(Duration.seconds(18_446_744_074).saturatingNanoseconds == .max)
        #expect(Duration.nanoseconds(UInt64.max).saturatingNanoseconds == .max)
    }

    @Test func millisecondsRoundTowardsZeroAndClamp() {
        #expect(Duration.milliseconds(75_000).wholeMilliseconds == 75_000)
        #expect(Duration.nanoseconds(1_999_999).wholeMilliseconds == 1)
        #expect(Duration.milliseconds(-3).wholeMilliseconds == -3)
        #expect(Duration.seconds(Int64.max).wholeMilliseconds == .max)
        #expect(Duration.seconds(Int64.min).wholeMilliseconds == .min)
    }
}
