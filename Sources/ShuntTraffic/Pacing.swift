/// The gap between frames xdp_gen keeps for `shunt gen --rate`, in the fixed point of
/// struct shunt_gen_state: whole nanoseconds plus a fraction in units of 2^-32 ns.
public struct FrameInterval: Equatable, Sendable {
    public var nanoseconds: UInt64
    public var fraction: UInt32

    /// The interval of `rate` frames per second (rate > 0). Rates above 1e9 pps round to 1 ns.
    public init(rate: Double) {
        precondition(rate > 0 && rate.isFinite)
        let ns = 1e9 / rate
        let whole = ns.rounded(.down)
        var frac = ((ns - whole) * 4294967296.0).rounded()
        var w = UInt64(whole)
        if frac >= 4294967296.0 { w += 1; frac = 0 }
        if w == 0 && frac == 0 { w = 1 }
        nanoseconds = w
        fraction = UInt32(frac)
    }

    public var asNanoseconds: Double { Double(nanoseconds) + Double(fraction) / 4294967296.0 }
}
