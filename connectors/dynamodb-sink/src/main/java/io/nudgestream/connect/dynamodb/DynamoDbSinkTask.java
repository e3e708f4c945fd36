package io.nudgestream.connect.dynamodb;

import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.sink.ErrantRecordReporter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTask;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.awscore.retry.AwsRetryStrategy;
import software.amazon.awssdk.core.client.config.ClientOverrideConfiguration;
import software.amazon.awssdk.http.apache5.Apache5HttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.dynamodb.DynamoDbClient;
import software.amazon.awssdk.services.dynamodb.DynamoDbClientBuilder;

/**
 * Writes each batch Connect hands over to DynamoDB before returning, so the offsets Connect commits after
 * put() are always of written records. Records that can never be written go to the errant record reporter
 * (the connector's dead-letter topic, with Connect's context headers) and the task carries on.
 */
public class DynamoDbSinkTask extends SinkTask {

    private static final Logger log = LoggerFactory.getLogger(DynamoDbSinkTask.class);

    private DynamoDbSinkConfig config;
    private ScoreRecordMapper mapper;
    private DynamoDbClient client;
    private BatchWriter writer;
    private ErrantRecordReporter reporter;

    @Override
    public String version() {
        return DynamoDbSinkConnector.VERSION;
    }

    @Override
    public void start(Map<String, String> props) {
        config = new DynamoDbSinkConfig(props);
        client = buildClient(config);
        start(config, client, context == null ? null : context.errantRecordReporter());
    }

    /** Starts with a given client and reporter: the seam the unit tests use. */
    void start(DynamoDbSinkConfig config, DynamoDbClient client, ErrantRecordReporter reporter) {
        this.config = config;
        this.client = client;
        this.reporter = reporter;
        this.mapper = ScoreRecordMapper.from(config);
        this.writer = new BatchWriter(client, config.table(), config.partitionKeyField(), config.sortKeyField(),
            config.batchSize(), config.maxInFlight(), config.maxRetries(), config.retryBackoffMs(),
            config.retryBackoffMaxMs(), Thread::sleep);
        if (reporter == null) {
            log.warn("No errant record reporter (errors.tolerance is not 'all'): an invalid record will fail "
                + "the task instead of going to a dead-letter topic");
        }
        log.info("DynamoDB sink writing to table {} in {} via {}", config.table(), config.region(),
            config.endpoint().isEmpty() ? "the AWS endpoint" : config.endpoint());
    }

    static DynamoDbClient buildClient(DynamoDbSinkConfig config) {
        String[] keys = config.staticCredentials();
        AwsCredentialsProvider credentials = keys == null
            ? DefaultCredentialsProvider.builder().build()
            : StaticCredentialsProvider.create(AwsBasicCredentials.create(keys[0], keys[1]));
        DynamoDbClientBuilder builder = DynamoDbClient.builder()
            .region(Region.of(config.region()))
            .credentialsProvider(credentials)
            .httpClientBuilder(Apache5HttpClient.builder().maxConnections(Math.max(8, 2 * config.maxInFlight())))
            .overrideConfiguration(ClientOverrideConfiguration.builder()
                // The writer owns retries and back-off; the SDK makes one attempt per call.
                .retryStrategy(AwsRetryStrategy.doNotRetry())
                .apiCallTimeout(Duration.ofMillis(config.requestTimeoutMs()))
                .build());
        if (!config.endpoint().isEmpty()) {
            builder.endpointOverride(URI.create(config.endpoint()));
        }
        return builder.build();
    }

    @Override
    public void put(Collection<SinkRecord> records) {
        if (records.isEmpty()) {
            return;
        }
        List<WriteOp> ops = new ArrayList<>(records.size());
        List<BatchWriter.Rejected> invalid = new ArrayList<>();
        for (SinkRecord record : records) {
            try {
                ops.add(mapper.map(record));
            } catch (InvalidScoreRecordException e) {
                invalid.add(new BatchWriter.Rejected(record, e));
            }
        }
        List<BatchWriter.Rejected> rejected;
        try {
            rejected = writer.write(ops);
        } catch (RetriableException e) {
            // Nothing is reported before the batch is written, so a redelivery reports each record once.
            if (context != null) {
                context.timeout(config.retryBackoffMaxMs());
            }
            throw e;
        }
        invalid.addAll(rejected);
        report(invalid);
    }

    private void report(List<BatchWriter.Rejected> failures) {
        if (failures.isEmpty()) {
            return;
        }
        if (reporter == null) {
            BatchWriter.Rejected first = failures.get(0);
            throw new ConnectException("record " + coordinates(first.record()) + " cannot be written and "
                + "the connector has no dead-letter topic (set errors.tolerance=all and "
                + "errors.deadletterqueue.topic.name): " + first.reason().getMessage(), first.reason());
        }
        List<Future<Void>> sent = new ArrayList<>(failures.size());
        for (BatchWriter.Rejected failure : failures) {
            log.warn("Record {} sent to the dead-letter topic: {}", coordinates(failure.record()),
                failure.reason().getMessage());
            sent.add(reporter.report(failure.record(), failure.reason()));
        }
        // Wait, so that the offsets Connect commits after put() never pass an unreported record.
        for (Future<Void> f : sent) {
            try {
                f.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new ConnectException("interrupted while reporting records to the dead-letter topic", e);
            } catch (ExecutionException e) {
                throw new ConnectException("could not write to the dead-letter topic", e.getCause());
            }
        }
    }

    private static String coordinates(SinkRecord r) {
        return r.topic() + "-" + r.kafkaPartition() + "@" + r.kafkaOffset();
    }

    @Override
    public void stop() {
        if (writer != null) {
            writer.close();
        }
        if (client != null) {
            client.close();
        }
    }
}
