import GatewayHTTP
import GatewayServer
import Testing

/// Matching is by segments, whatever the path's form: the shortcut for canonical paths (one
/// comparison for templates without parameters) must pick the same route the full match picks.
@Suite struct RouterTests {
    static let router: Router = {
        var router = Router()
        let ok: Router.Handler = { _, _ in HTTPResponse(status: .ok) }
        router.get("/", handler: ok)
        router.get("/a", handler: ok)
        router.get("/a/{id}", handler: ok)
        router.post("/a", handler: ok)
        // Registered after the parameter route of the same shape: never reached for GET.
        router.get("/a/b", handler: ok)
        router.get("/c/d/e", handler: ok)
        return router
    }()

    @Test(arguments: [
        ("/", "/"), ("//", "/"), ("/a", "/a"), ("//a/", "/a"), ("/a//", "/a"), ("a", "/a"),
        ("/a/b", "/a/{id}"), ("/a//b", "/a/{id}"), ("/a/x", "/a/{id}"),
        ("/c/d/e", "/c/d/e"), ("/c//d/e/", "/c/d/e"),
    ])
    func theFirstRouteWhoseSegmentsMatchWins(path: String, template: String) {
        #expect(Self.router.match(method: .get, path: path)?.template == template)
    }

    @Test(arguments: ["/b", "/a/b/c", "/c/d", "/c/d/e/f", "/A", "/a/"  + String(repeating: "x/", count: 3)])
    func pathsOfNoRouteMatchNothing(path: String) {
        #expect(Self.router.match(method: .get, path: path) == nil)
    }

    @Test func parametersArePercentDecodedWhateverThePathForm() {
        #expect(Self.router.match(method: .get, path: "/a/x%20y")?.parameters == ["id": "x y"])
        #expect(Self.router.match(method: .get, path: "//a//x%2Fy/")?.parameters == ["id": "x/y"])
    }

    @Test func methodsAreMatchedAfterThePath() async {
        #expect(Self.router.match(method: .post, path: "/a")?.template == "/a")
        #expect(Self.router.match(method: .post, path: "//a/")?.template == "/a")
        #expect(Self.router.match(method: .head, path: "/a")?.template == "/a")
        let response = await Self.router.respond(to: HTTPRequest(method: .delete, target: "/a"), context: RequestContext())
        #expect(response.status == .methodNotAllowed)
        #expect(response.headers["Allow"] == "GET, HEAD, POST")
    }
}

/// The server's own problem bodies (routing errors, malformed and timed-out requests).
@Suite struct DefaultProblemTests {
    @Test func escapesWhatTheRequestBroughtAndNamesTheRequest() {
        let response = HTTPResponse.defaultProblem(
            status: .notFound, detail: "No route for /a\"b\\c\u{1}.", requestID: "id-1"
        )
        #expect(String(decoding: response.body, as: UTF8.self)
            == #"{"type":"about:blank","title":"Not Found","status":404,"detail":"No route for /a\"b\\c\u0001.","requestId":"id-1"}"#)
        #expect(response.headers["Content-Type"] == "application/problem+json")
    }

    @Test func leavesTheRequestIdOutBeforeARequestExists() {
        let response = HTTPResponse.defaultProblem(status: .badRequest, detail: "Malformed request.")
        #expect(String(decoding: response.body, as: UTF8.self)
            == #"{"type":"about:blank","title":"Bad Request","status":400,"detail":"Malformed request."}"#)
    }
}
