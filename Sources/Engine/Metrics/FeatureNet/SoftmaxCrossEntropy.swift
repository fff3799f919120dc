import Foundation

/// Mean softmax cross-entropy over a batch of logits [N, K] with integer labels,
/// and its gradient with respect to the logits: (softmax − onehot) / N.
public func softmaxCrossEntropy(logits: Tensor, labels: [Int]) -> (loss: Double, gradient: Tensor) {
    precondition(logits.rank == 2 && logits.shape[0] == labels.count, "softmaxCrossEntropy: shapes \(logits.shape) vs \(labels.count) labels")
    let (n, k) = (logits.shape[0], logits.shape[1])
    var grad = Tensor(zeros: logits.shape)
    var loss = 0.0
    for i in 0..<n {
        precondition(labels[i] >= 0 && labels[i] < k, "label \(labels[i]) outside 0..<\(k)")
        let row = logits.data[(i * k)..<((i + 1) * k)]
        let m = row.max()!
        var z: Float = 0
        for v in row { z += expf(v - m) }
        for j in 0..<k {
            let p = expf(logits.data[i * k + j] - m) / z
            grad.data[i * k + j] = (p - (j == labels[i] ? 1 : 0)) / Float(n)
        }
        loss += Double(logf(z) + m - logits.data[i * k + labels[i]])
    }
    return (loss / Double(n), grad)
}
