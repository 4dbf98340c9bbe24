import GatewayEventLoop
import Testing

@Suite struct ProcessMemoryTests {
    @Test func theArenaLimitIsAppliedUnlessTheEnvironmentSetsOne() {
        // A limit of 8 is glibc's default on a single core and harmless for the test process.
        #expect(ProcessMemory.limitAllocatorArenas(to: 8, environment: { _ in nil }))
        #expect(!ProcessMemory.limitAllocatorArenas(to: 8, environment: { $0 == "MALLOC_ARENA_MAX" ? "4" : nil }),
                "an operator's MALLOC_ARENA_MAX wins")
        #expect(!ProcessMemory.limitAllocatorArenas(to: 0, environment: { _ in nil }))
    }
}
