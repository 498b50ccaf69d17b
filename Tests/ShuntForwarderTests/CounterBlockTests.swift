import Testing

@testable import ShuntForwarder

@Suite("Counter block")
struct CounterBlockTests {
    /// Rows are independent, a column sums over them, and levels overwrite.
    @Test func rowsAddUpAndStayApart() {
        let block = CounterBlock(rows: 3, columns: 5)
        for row in 0..<3 {
            for column in 0..<5 { block.add(row, column, UInt64(10 * row + column)) }
        }
        block.add(2, 4)
        // Read into locals first: #expect's expansion cannot capture a noncopyable value.
        var sums: [UInt64] = []
        for column in 0..<5 { sums.append(block.sum(column)) }
        #expect(sums == [30, 33, 36, 39, 43])
        block.set(1, 0, 7)
        let (level, other, sum) = (block.value(1, 0), block.value(0, 0), block.sum(0))
        #expect(level == 7 && other == 0 && sum == 27)
    }

    @Test func ruleCountersStartAgainAfterAReset() {
        let rules = RuleCounters(writers: 2, maxRules: 4)
        rules.add(row: 0, rule: 3, bytes: 100)
        rules.add(row: 1, rule: 3, packets: 2, bytes: 50)
        rules.add(row: 1, rule: 9, bytes: 1)  // beyond maxRules: ignored
        #expect(rules.read(3) == (3, 150) && rules.read(2) == (0, 0))
        rules.reset(3)
        rules.add(row: 0, rule: 3, bytes: 60)
        #expect(rules.read(3) == (1, 60))
    }
}
