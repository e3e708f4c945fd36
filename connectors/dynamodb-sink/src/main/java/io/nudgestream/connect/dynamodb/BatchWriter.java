package io.nudgestream.connect.dynamodb;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.sink.SinkRecord;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import software.amazon.awssdk.awscore.exception.AwsServiceException;
import software.amazon.awssdk.core.exception.SdkClientException;
import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.services.dynamodb.DynamoDbClient;
import software.amazon.awssdk.services.dynamodb.model.AttributeValue;
import software.amazon.awssdk.services.dynamodb.model.BatchWriteItemResponse;
import software.amazon.awssdk.services.dynamodb.model.ResourceNotFoundException;
import software.amazon.awssdk.services.dynamodb.model.WriteRequest;

/**
 * Writes a batch of puts and deletes with BatchWriteItem.
 *
 * <p>The batch is first reduced to one write per key (the last one wins, a tombstone included): DynamoDB
 * refuses a BatchWriteItem naming a key twice, and the last write is the only one that matters for a
 * compacted topic. The keys are then split into chunks of at most 25 that run in parallel; as no two
 * chunks share a key, their order does not matter. Unprocessed items, throttling, 5xx and network errors
 * are retried with exponential back-off (doubling, equal jitter); once the retries are spent the caller
 * gets a {@link RetriableException} and Connect redelivers the records, which is safe as every write is
 * idempotent. A chunk DynamoDB rejects as invalid is rewritten one item at a time so that only the
 * offending records come back as {@link Rejected}; credentials or permission errors fail the task.
 */
public final class BatchWriter implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(BatchWriter.class);

    private static final Set<String> RETRIABLE_CODES = Set.of(
        "ProvisionedThroughputExceededException", "RequestLimitExceeded", "ThrottlingException",
        "ThrottlingError", "LimitExceededException", "InternalServerError", "ServiceUnavailable",
        "ExpiredTokenException", "TransactionConflictException");

    private static final Set<String> FATAL_CODES = Set.of(
        "UnrecognizedClientException", "AccessDeniedException", "InvalidSignatureException",
        "MissingAuthenticationToken", "MissingAuthenticationTokenException", "InvalidClientTokenId",
        "IncompleteSignatureException", "SignatureDoesNotMatch");

    /** Sleeps between retries; replaced in tests. */
    @FunctionalInterface
    public interface Sleeper {
        void sleep(long millis) throws InterruptedException;
    }

    /** A record DynamoDB will never accept as it is, and why. */
    public record Rejected(SinkRecord record, Exception reason) {}

    private final DynamoDbClient client;
    private final String table;
    private final String partitionField;
    private final String sortField;
    private final int batchSize;
    private final int maxRetries;
    private final long backoffMs;
    private final long backoffMaxMs;
    private final Sleeper sleeper;
    private final ExecutorService pool;

    public BatchWriter(DynamoDbClient client, String table, String partitionField, String sortField,
                       int batchSize, int maxInFlight, int maxRetries, long backoffMs, long backoffMaxMs,
                       Sleeper sleeper) {
        this.client = client;
        this.table = table;
        this.partitionField = partitionField;
        this.sortField = sortField;
        this.batchSize = batchSize;
        this.maxRetries = maxRetries;
        this.backoffMs = backoffMs;
        this.backoffMaxMs = backoffMaxMs;
        this.sleeper = sleeper;
        AtomicInteger n = new AtomicInteger();
        this.pool = maxInFlight <= 1 ? null : Executors.newFixedThreadPool(maxInFlight, r -> {
            Thread t = new Thread(r, "nudge-dynamodb-sink-writer-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
    }

    /** One write per key, the last one of the batch (its position is that of the key's last write). */
    public static List<WriteOp> lastWritePerKey(List<WriteOp> ops) {
        Map<ItemKey, WriteOp> last = new LinkedHashMap<>();
        for (WriteOp op : ops) {
            last.remove(op.key());
            last.put(op.key(), op);
        }
        return new ArrayList<>(last.values());
    }

    /** Writes every op; returns those DynamoDB rejected as invalid. */
    public List<Rejected> write(List<WriteOp> ops) {
        List<WriteOp> unique = lastWritePerKey(ops);
        List<List<WriteOp>> chunks = new ArrayList<>();
        for (int i = 0; i < unique.size(); i += batchSize) {
            chunks.add(unique.subList(i, Math.min(unique.size(), i + batchSize)));
        }
        List<Rejected> rejected = new ArrayList<>();
        if (pool == null || chunks.size() <= 1) {
            for (List<WriteOp> chunk : chunks) {
                rejected.addAll(writeChunk(chunk));
            }
            return rejected;
        }
        List<Future<List<Rejected>>> futures = new ArrayList<>();
        for (List<WriteOp> chunk : chunks) {
            futures.add(pool.submit(() -> writeChunk(chunk)));
        }
        RuntimeException first = null;
        for (Future<List<Rejected>> future : futures) {
            try {
                rejected.addAll(future.get());
            } catch (ExecutionException e) {
                RuntimeException cause = e.getCause() instanceof RuntimeException re ? re
                    : new ConnectException("DynamoDB write failed", e.getCause());
                // A fatal error outranks a retriable one: report the worst.
                if (first == null || (first instanceof RetriableException && !(cause instanceof RetriableException))) {
                    first = cause;
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new RetriableException("interrupted while writing to DynamoDB", e);
            }
        }
        if (first != null) {
            throw first;
        }
        return rejected;
    }

    private List<Rejected> writeChunk(List<WriteOp> chunk) {
        Map<ItemKey, WriteOp> byKey = new LinkedHashMap<>();
        List<WriteRequest> pending = new ArrayList<>(chunk.size());
        for (WriteOp op : chunk) {
            byKey.put(op.key(), op);
            pending.add(op.toWriteRequest());
        }
        for (int attempt = 0; ; attempt++) {
            String reason;
            try {
                Map<String, List<WriteRequest>> request = Map.of(table, pending);
                BatchWriteItemResponse response = client.batchWriteItem(b -> b.requestItems(request));
                List<WriteRequest> unprocessed = response.hasUnprocessedItems()
                    ? response.unprocessedItems().getOrDefault(table, List.of()) : List.of();
                if (unprocessed.isEmpty()) {
                    return List.of();
                }
                reason = unprocessed.size() + " of " + pending.size() + " items unprocessed";
                pending = new ArrayList<>(unprocessed);
            } catch (SdkException e) {
                if (!isRetriable(e)) {
                    if (isFatal(e)) {
                        throw new ConnectException("DynamoDB refused the sink's credentials or permissions "
                            + "for table " + table + ": " + e.getMessage(), e);
                    }
                    log.info("BatchWriteItem of {} items rejected ({}); writing them one by one to find the "
                        + "invalid ones", pending.size(), e.getMessage());
                    List<WriteOp> left = new ArrayList<>(pending.size());
                    for (WriteRequest r : pending) {
                        left.add(byKey.get(keyOf(r)));
                    }
                    return writeOneByOne(left);
                }
                reason = describe(e);
            }
            backOff(attempt, "BatchWriteItem of " + pending.size() + " items", reason);
        }
    }

    private List<Rejected> writeOneByOne(List<WriteOp> ops) {
        List<Rejected> rejected = new ArrayList<>();
        for (WriteOp op : ops) {
            Supplier<Object> call = op.isDelete()
                ? () -> client.deleteItem(b -> b.tableName(table).key(op.keyAttributes()))
                : () -> client.putItem(b -> b.tableName(table).item(op.item()));
            for (int attempt = 0; ; attempt++) {
                String reason;
                try {
                    call.get();
                    break;
                } catch (SdkException e) {
                    if (!isRetriable(e)) {
                        if (isFatal(e)) {
                            throw new ConnectException("DynamoDB refused the sink's credentials or permissions "
                                + "for table " + table + ": " + e.getMessage(), e);
                        }
                        rejected.add(new Rejected(op.record(), new InvalidScoreRecordException(
                            "DynamoDB rejected the " + (op.isDelete() ? "delete" : "put") + " of "
                                + op.key().partition() + "/" + op.key().sort() + ": " + e.getMessage(), e)));
                        break;
                    }
                    reason = describe(e);
                }
                backOff(attempt, (op.isDelete() ? "DeleteItem " : "PutItem ") + op.key(), reason);
            }
        }
        return rejected;
    }

    private void backOff(int attempt, String what, String reason) {
        if (attempt >= maxRetries) {
            throw new RetriableException(what + " still failing after " + maxRetries + " retries: " + reason);
        }
        long delay = backoffDelay(attempt);
        log.warn("{} failed ({}); retry {}/{} in {} ms", what, reason, attempt + 1, maxRetries, delay);
        try {
            sleeper.sleep(delay);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RetriableException("interrupted while backing off: " + reason, e);
        }
    }

    /** Exponential back-off with equal jitter: between half and all of min(max, base * 2^attempt). */
    long backoffDelay(int attempt) {
        long ceiling = backoffMs << Math.min(attempt, 30);
        if (ceiling <= 0 || ceiling > backoffMaxMs) {
            ceiling = backoffMaxMs;
        }
        long half = ceiling / 2;
        return half + ThreadLocalRandom.current().nextLong(ceiling - half + 1);
    }

    private ItemKey keyOf(WriteRequest request) {
        Map<String, AttributeValue> attrs = request.putRequest() != null
            ? request.putRequest().item() : request.deleteRequest().key();
        return new ItemKey(attrs.get(partitionField).s(), attrs.get(sortField).s());
    }

    static boolean isRetriable(SdkException e) {
        if (e instanceof AwsServiceException a) {
            String code = a.awsErrorDetails() == null ? null : a.awsErrorDetails().errorCode();
            return a.isThrottlingException() || a.statusCode() >= 500 || a instanceof ResourceNotFoundException
                || (code != null && RETRIABLE_CODES.contains(code));
        }
        // Client-side: connection refused, timeouts, credentials not yet available.
        return e instanceof SdkClientException;
    }

    static boolean isFatal(SdkException e) {
        if (e instanceof AwsServiceException a) {
            String code = a.awsErrorDetails() == null ? null : a.awsErrorDetails().errorCode();
            return a.statusCode() == 401 || a.statusCode() == 403 || (code != null && FATAL_CODES.contains(code));
        }
        return false;
    }

    private static String describe(SdkException e) {
        if (e instanceof ResourceNotFoundException) {
            return "table not found (yet?): " + e.getMessage();
        }
        return e.getClass().getSimpleName() + ": " + e.getMessage();
    }

    @Override
    public void close() {
        if (pool != null) {
            pool.shutdownNow();
        }
    }
}
