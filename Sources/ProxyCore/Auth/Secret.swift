// Password secrets as PgBouncer's userlist.txt (auth_file) stores them: plaintext, "md5<hex>",
// or a Postgres SCRAM-SHA-256 secret; plus the auth_file parser.

/// A Postgres SCRAM-SHA-256 secret: `SCRAM-SHA-256$<iter>:<b64salt>$<b64StoredKey>:<b64ServerKey>`.
public struct SCRAMSecret: Equatable, Sendable {
    /// PBKDF2 iteration count (Postgres default 4096).
    public var iterations: Int
    /// The salt, raw bytes.
    public var salt: [UInt8]
    /// `H(ClientKey)`, 32 bytes.
    public var storedKey: [UInt8]
    /// `HMAC(SaltedPassword, "Server Key")`, 32 bytes.
    public var serverKey: [UInt8]

    /// Prefix that marks a SCRAM secret in pg_authid and auth_file.
    public static let prefix = "SCRAM-SHA-256$"

    public init(iterations: Int, salt: [UInt8], storedKey: [UInt8], serverKey: [UInt8]) {
        self.iterations = iterations
        self.salt = salt
        self.storedKey = storedKey
        self.serverKey = serverKey
    }

    /// Parses the Postgres text form; nil if it is not a well-formed SCRAM-SHA-256 secret.
    public init?(parsing text: String) {
        guard text.hasPrefix(Self.prefix) else { return nil }
        let body = text.dropFirst(Self.prefix.count)
        let halves = body.split(separator: "$", omittingEmptySubsequences: false)
        guard halves.count == 2 else { return nil }
        let left = halves[0].split(separator: ":", omittingEmptySubsequences: false)
        let right = halves[1].split(separator: ":", omittingEmptySubsequences: false)
        guard left.count == 2, right.count == 2,
              left[0].allSatisfy({ $0.isASCII && $0.isNumber }),
              let iterations = Int(left[0]), iterations > 0,
              let salt = AuthBase64.decode(Array(left[1].utf8)), !salt.isEmpty,
              let storedKey = AuthBase64.decode(Array(right[0].utf8)), storedKey.count == 32,
              let serverKey = AuthBase64.decode(Array(right[1].utf8)), serverKey.count == 32
        else { return nil }
        self.init(iterations: iterations, salt: salt, storedKey: storedKey, serverKey: serverKey)
    }

    /// The Postgres text form, as `CREATE ROLE ... PASSWORD` stores it.
    public var encoded: String {
        Self.prefix + "\(iterations):" + AuthBase64.encodeString(salt) + "$"
            + AuthBase64.encodeString(storedKey) + ":" + AuthBase64.encodeString(serverKey)
    }
}

/// A user's password secret as found in auth_file.
public enum Secret: Equatable, Sendable {
    /// A plaintext password.
    case plain(String)
    /// The full `"md5" + hex(md5(password + user))`, 35 characters.
    case md5(String)
    /// A SCRAM-SHA-256 secret.
    case scram(SCRAMSecret)

    /// Classifies a secret the way Postgres and PgBouncer do: a valid SCRAM secret, then
    /// "md5" followed by 32 hex digits, else plaintext.
    public init(parsing text: String) {
        if let scram = SCRAMSecret(parsing: text) {
            self = .scram(scram)
        } else if Secret.isMD5(text) {
            self = .md5(text)
        } else {
            self = .plain(text)
        }
    }

    /// True for "md5" followed by exactly 32 lowercase or uppercase hex digits.
    static func isMD5(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 35, bytes.starts(with: Array("md5".utf8)) else { return false }
        return bytes[3...].allSatisfy { b in
            (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
                || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "f"))
                || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "F"))
        }
    }
}

/// Why an auth_file could not be loaded.
public enum AuthFileError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The line (1-based) is neither blank, a comment, nor `"user" "secret"`.
    case malformedLine(Int, String)

    public var description: String {
        switch self {
        case let .malformedLine(line, reason): return "auth_file line \(line): \(reason)"
        }
    }
}

/// PgBouncer's auth_file (userlist.txt) format.
public enum AuthFile {
    /// Parses `"user" "secret"` lines. Inside quotes `""` is a literal quote. Blank lines and
    /// lines whose first non-blank character is `;` or `#` are skipped; anything after the
    /// second field and a blank is ignored, as PgBouncer does. CRLF line ends are accepted. A later line for the same user wins.
    /// - Throws: `AuthFileError.malformedLine` naming the 1-based line number.
    public static func parse(_ text: String) throws -> [String: Secret] {
        var result: [String: Secret] = [:]
        var lineNumber = 0
        for rawLine in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = Array(rawLine)
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            var i = skipBlanks(line, 0)
            if i == line.count || line[i] == UInt8(ascii: ";") || line[i] == UInt8(ascii: "#") { continue }
            guard let (user, afterUser) = quoted(line, i) else {
                throw AuthFileError.malformedLine(lineNumber, "expected a double-quoted user name")
            }
            guard !user.isEmpty else {
                throw AuthFileError.malformedLine(lineNumber, "empty user name")
            }
            i = skipBlanks(line, afterUser)
            guard i > afterUser, let (secret, afterSecret) = quoted(line, i) else {
                throw AuthFileError.malformedLine(lineNumber, "expected a double-quoted password after the user name")
            }
            guard afterSecret == line.count || isBlank(line[afterSecret]) else {
                throw AuthFileError.malformedLine(lineNumber, "unexpected text after the password")
            }
            result[user] = Secret(parsing: secret)
        }
        return result
    }

    private static func isBlank(_ b: UInt8) -> Bool { b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") }

    private static func skipBlanks(_ line: [UInt8], _ start: Int) -> Int {
        var i = start
        while i < line.count, isBlank(line[i]) { i += 1 }
        return i
    }

    /// Reads a `"..."` field starting at `start`; returns its value and the index after the closing quote.
    private static func quoted(_ line: [UInt8], _ start: Int) -> (String, Int)? {
        let quote = UInt8(ascii: "\"")
        guard start < line.count, line[start] == quote else { return nil }
        var value: [UInt8] = []
        var i = start + 1
        while i < line.count {
            if line[i] == quote {
                if i + 1 < line.count, line[i + 1] == quote {
                    value.append(quote)
                    i += 2
                    continue
                }
                return (String(decoding: value, as: UTF8.self), i + 1)
            }
            value.append(line[i])
            i += 1
        }
        return nil
    }
}
