/// The value of a base64url character (RFC 4648 §5), or nil. Signal strings are read six bits
/// per character, straight from the characters: no decoded byte buffer, so a string whose length
/// is 1 mod 4 (common in GPP headers, fatal to byte-oriented base64 decoders) reads like any other.
@inline(__always)
func sextet(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "A")...UInt8(ascii: "Z"): return byte &- UInt8(ascii: "A")
    case UInt8(ascii: "a")...UInt8(ascii: "z"): return byte &- UInt8(ascii: "a") &+ 26
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte &- UInt8(ascii: "0") &+ 52
    case UInt8(ascii: "-"): return 62
    case UInt8(ascii: "_"): return 63
    default: return nil
    }
}

/// Whether `byte` is a base64url character (`sextet(byte) != nil`), without a branch per class.
@inline(__always)
func isSextet(_ byte: UInt8) -> Bool {
    let folded = byte | 0x20
    return (folded >= UInt8(ascii: "a") && folded <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
        || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
}

/// The value of a character already known to be base64url (`BitReader` checks every character
/// when it is made): branch-free, so reading bits costs a few instructions per character.
@inline(__always)
func validSextet(_ byte: UInt8) -> UInt8 {
    var value = byte &- UInt8(ascii: "A")                                   // A–Z
    value = byte >= UInt8(ascii: "a") ? byte &- (UInt8(ascii: "a") &- 26) : value   // a–z
    value = byte <= UInt8(ascii: "9") ? byte &+ (52 &- UInt8(ascii: "0")) : value   // 0–9
    value = byte == UInt8(ascii: "-") ? 62 : value
    value = byte == UInt8(ascii: "_") ? 63 : value
    return value
}

/// One base64url-encoded part of a signal string (a TCF segment, a GPP header or subsection),
/// read MSB first, six bits per character. Borrows the caller's bytes: valid only while they are.
/// Every character is checked when the part is made, so reads never meet a foreign byte.
struct BitReader {
    let chars: UnsafeRawBufferPointer
    let signal: SignalKind
    var segment: StaticString
    /// Next bit to read.
    var position: Int = 0

    /// Checks every character. `padding` accepts up to two trailing `=` (TC strings produced by
    /// Java's URL encoder carry them); they are not part of the bits.
    init(_ chars: UnsafeRawBufferPointer, signal: SignalKind, segment: StaticString, allowPadding: Bool = false) throws(SignalError) {
        var count = chars.count
        if allowPadding {
            var padding = 0
            while count > 0, padding < 2, chars[count - 1] == UInt8(ascii: "=") {
                count -= 1
                padding += 1
            }
        }
        for index in 0..<count where !isSextet(chars[index]) {
            throw SignalError(signal, segment: segment, field: "(character)", bitOffset: index * 6, problem: .invalidCharacter(chars[index]))
        }
        guard count > 0 else {
            throw SignalError(signal, segment: segment, field: "(segment)", bitOffset: 0, problem: .empty)
        }
        self.chars = UnsafeRawBufferPointer(rebasing: chars[0..<count])
        self.signal = signal
        self.segment = segment
    }

    var bitCount: Int { chars.count &* 6 }
    var remaining: Int { bitCount &- position }

    /// `width` (0…64) bits at `at`, which the caller has checked lie inside the part: the
    /// characters that hold them are gathered six bits at a time into one word, then shifted and
    /// masked once (a field of up to 55 bits spans at most ten characters).
    @inline(__always)
    func peek(at start: Int, width: Int) -> UInt64 {
        guard width > 0 else { return 0 }
        let first = start / 6
        let total = start &- first &* 6 &+ width
        guard total <= 60 else {
            // Wider than one gather: the high bits, then the low 32.
            return peek(at: start, width: width &- 32) << 32 | peek(at: start &+ width &- 32, width: 32)
        }
        let count = (total &+ 5) / 6
        var gathered: UInt64 = 0
        var index = first
        let end = first &+ count
        while index < end {
            gathered = gathered << 6 | UInt64(validSextet(chars[index]))
            index &+= 1
        }
        return (gathered >> UInt64(count &* 6 &- total)) & ((1 << UInt64(width)) &- 1)
    }

    @inline(__always)
    func bit(at index: Int) -> Bool {
        let sixBits = validSextet(chars[index / 6])
        return (sixBits >> UInt8(5 &- index % 6)) & 1 == 1
    }

    /// Reads `width` bits as an unsigned integer, or names the field that the string is too short for.
    @inline(__always)
    mutating func read(_ width: Int, _ field: StaticString) throws(SignalError) -> UInt64 {
        guard width <= remaining else {
            throw error(field, .truncated(needed: width, available: remaining))
        }
        let value = peek(at: position, width: width)
        position &+= width
        return value
    }

    @inline(__always)
    mutating func readInt(_ width: Int, _ field: StaticString) throws(SignalError) -> Int {
        Int(truncatingIfNeeded: try read(width, field))
    }

    @inline(__always)
    mutating func readBool(_ field: StaticString) throws(SignalError) -> Bool {
        try read(1, field) == 1
    }

    /// Skips `width` bits that must be present.
    mutating func skip(_ width: Int, _ field: StaticString) throws(SignalError) {
        guard width <= remaining else {
            throw error(field, .truncated(needed: width, available: remaining))
        }
        position &+= width
    }

    func error(_ field: StaticString, _ problem: SignalError.Problem, at offset: Int? = nil) -> SignalError {
        SignalError(signal, segment: segment, field: field, bitOffset: offset ?? position, problem: problem)
    }

    /// A Fibonacci-coded positive integer (GPP): bit k (LSB first) weighs F(k+2) = 1, 2, 3, 5, …;
    /// the code ends at the first two consecutive ones, the second of which is the terminator.
    mutating func readFibonacci(_ field: StaticString) throws(SignalError) -> Int {
        let start = position
        var value = 0
        var previous = false
        var weight = 1
        var nextWeight = 2
        var length = 0
        while true {
            guard remaining > 0 else {
                throw error(field, .truncated(needed: 1, available: 0))
            }
            let one = bit(at: position)
            position &+= 1
            if one && previous { return value }
            length &+= 1
            if length > 32 { throw error(field, .fibonacciTooLong, at: start) }
            if one { value &+= weight }
            previous = one
            (weight, nextWeight) = (nextWeight, weight &+ nextWeight)
        }
    }
}

/// Splits `bytes` at `separator` without allocating: calls `body` with each part's range in order.
/// Stops early when `body` returns false.
@inline(__always)
func forEachPart(_ bytes: UnsafeRawBufferPointer, separator: UInt8, _ body: (Range<Int>) throws(SignalError) -> Bool) throws(SignalError) {
    var start = 0
    var index = 0
    while index < bytes.count {
        if bytes[index] == separator {
            if try !body(start..<index) { return }
            start = index &+ 1
        }
        index &+= 1
    }
    _ = try body(start..<bytes.count)
}
