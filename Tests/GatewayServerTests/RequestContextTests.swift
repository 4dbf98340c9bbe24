import GatewayHTTP
import GatewayServer
import Testing

@Suite struct RequestContextTests {
    enum NameKey: RequestContextKey { typealias Value = String }
    enum CountKey: RequestContextKey { typealias Value = Int }
    enum OtherCountKey: RequestContextKey { typealias Value = Int }
    struct Wide: Sendable, Equatable { var a, b, c, d, e: Int; var label: String }
    enum WideKey: RequestContextKey { typealias Value = Wide }
    final class Marker: Sendable {}
    enum MarkerKey: RequestContextKey { typealias Value = Marker }

    @Test func eachKeyHoldsItsOwnValue() {
        var context = RequestContext()
        #expect(context[NameKey.self] == nil && context[CountKey.self] == nil)
        let marker = Marker()
        context[NameKey.self] = "alpha"
        context[CountKey.self] = 1
        context[OtherCountKey.self] = 2
        context[WideKey.self] = Wide(a: 1, b: 2, c: 3, d: 4, e: 5, label: "wide")
        context[MarkerKey.self] = marker
        #expect(context[NameKey.self] == "alpha")
        #expect(context[CountKey.self] == 1 && context[OtherCountKey.self] == 2, "same value type, different keys")
        #expect(context[WideKey.self] == Wide(a: 1, b: 2, c: 3, d: 4, e: 5, label: "wide"))
        #expect(context[MarkerKey.self] === marker)
    }

    @Test func valuesAreReplacedAndRemovedAndCopiesAreIndependent() {
        var context = RequestContext()
        context[CountKey.self] = 1
        let copy = context
        context[CountKey.self] = 5
        context[NameKey.self] = "later"
        #expect(context[CountKey.self] == 5 && copy[CountKey.self] == 1 && copy[NameKey.self] == nil)
        context[CountKey.self] = nil
        #expect(context[CountKey.self] == nil && context[NameKey.self] == "later")
        context[CountKey.self] = nil
        #expect(context[NameKey.self] == "later")
    }
}
