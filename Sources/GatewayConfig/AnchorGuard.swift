/// Finds YAML anchors (`&name`) and aliases (`*name`) before the document reaches Yams.
///
/// Why: Yams checks mapping keys for duplicates by hashing them, and a key built from nested aliases
/// (`? *a9 : x` with `a9` holding nine copies of `a8`, ...) expands exponentially, so parsing hangs. A gateway
/// configuration has no use for anchors, so they are refused with the line instead.
///
/// This is a lexical scan, not a YAML parser: it tracks only quoted scalars, comments and the positions where a
/// node may begin (line start, after `- `, `? `, `: `, and `[`, `{`, `,` inside flow collections). A `*` or `&`
/// there is an alias or anchor indicator; inside a plain value (`pa*ss`) it is not looked at.
enum AnchorGuard {
    static func firstAnchorOrAliasLine(in text: String) -> Int? {
        let scalars = Array(text.unicodeScalars)
        var line = 1
        var index = 0
        var quote: Unicode.Scalar?
        var inComment = false
        var atNodeStart = true
        var flowDepth = 0
        var previous: Unicode.Scalar = "\n"

        func isBlank(_ offset: Int) -> Bool {
            offset >= scalars.count || scalars[offset] == " " || scalars[offset] == "\t"
                || scalars[offset] == "\n" || scalars[offset] == "\r"
        }

        while index < scalars.count {
            let scalar = scalars[index]
            defer {
                previous = scalar
                index += 1
            }
            if scalar == "\n" {
                line += 1
                inComment = false
                if quote == nil { atNodeStart = true }
                continue
            }
            if inComment { continue }
            if let open = quote {
                if open == "\"", scalar == "\\" {
                    index += 1  // the escaped character cannot close the string
                } else if scalar == open {
                    quote = nil
                }
                continue
            }
            switch scalar {
            case " ", "\t", "\r":
                break
            case "#":
                if previous == " " || previous == "\t" || previous == "\n" { inComment = true }
                atNodeStart = false
            case "\"", "'":
                if atNodeStart { quote = scalar }
                atNodeStart = false
            case "*", "&":
                if atNodeStart, !isBlank(index + 1) { return line }
                atNodeStart = false
            case "-", "?":
                // `- ` and `? ` begin a node only where a node could begin anyway.
                atNodeStart = atNodeStart && isBlank(index + 1)
            case ":":
                atNodeStart = isBlank(index + 1) || (flowDepth > 0 && (index + 1 < scalars.count && scalars[index + 1] == ","))
            case "[", "{":
                if atNodeStart { flowDepth += 1 }
            case "]", "}":
                if flowDepth > 0 { flowDepth -= 1 }
                atNodeStart = false
            case ",":
                atNodeStart = flowDepth > 0
            default:
                atNodeStart = false
            }
        }
        return nil
    }
}
