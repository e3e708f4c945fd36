package io.nudgestream.connect.dynamodb;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;
import software.amazon.awssdk.awscore.exception.AwsErrorDetails;
import software.amazon.awssdk.awscore.exception.AwsServiceException;
import software.amazon.awssdk.services.dynamodb.DynamoDbClient;
import software.amazon.awssdk.services.dynamodb.model.AttributeValue;
import software.amazon.awssdk.services.dynamodb.model.BatchWriteItemRequest;
import software.amazon.awssdk.services.dynamodb.model.BatchWriteItemResponse;
import software.amazon.awssdk.services.dynamodb.model.DeleteItemRequest;
import software.amazon.awssdk.services.dynamodb.model.DeleteItemResponse;
import software.amazon.awssdk.services.dynamodb.model.DynamoDbException;
import software.amazon.awssdk.services.dynamodb.model.PutItemRequest;
import software.amazon.awssdk.services.dynamodb.model.PutItemResponse;
import software.amazon.awssdk.services.dynamodb.model.WriteRequest;

/**
 * An in-memory table behind the DynamoDbClient interface. A hook sees each BatchWriteItem first and may
 * throw, or return the requests to leave unprocessed; items whose "score" is the string "invalid" are
 * rejected as DynamoDB rejects invalid items (the whole batch fails with a ValidationException).
 */
final class FakeDynamoDb implements DynamoDbClient {

    final Map<List<String>, Map<String, AttributeValue>> table = new ConcurrentHashMap<>();
    final List<Integer> batchSizes = Collections.synchronizedList(new ArrayList<>());
    final List<String> singleCalls = Collections.synchronizedList(new ArrayList<>());
    volatile Function<List<WriteRequest>, List<WriteRequest>> hook = requests -> List.of();

    static AwsServiceException error(int status, String code) {
        return DynamoDbException.builder().statusCode(status).message(code + " from the fake")
            .awsErrorDetails(AwsErrorDetails.builder().errorCode(code).errorMessage(code + " from the fake").build())
            .build();
    }

    @Override
    public BatchWriteItemResponse batchWriteItem(BatchWriteItemRequest request) {
        List<WriteRequest> requests = request.requestItems().get("insights");
        batchSizes.add(requests.size());
        if (requests.size() > 25) {
            throw error(400, "ValidationException");
        }
        List<List<String>> keys = new ArrayList<>();
        for (WriteRequest r : requests) {
            Map<String, AttributeValue> attrs = r.putRequest() != null ? r.putRequest().item() : r.deleteRequest().key();
            List<String> key = List.of(attrs.get("customer_id").s(), attrs.get("rule_id").s());
            if (keys.contains(key)) {
                throw error(400, "ValidationException");
            }
            keys.add(key);
            if (r.putRequest() != null && isInvalid(r.putRequest().item())) {
                throw error(400, "ValidationException");
            }
        }
        List<WriteRequest> unprocessed = hook.apply(requests);
        for (WriteRequest r : requests) {
            if (!unprocessed.contains(r)) {
                apply(r);
            }
        }
        return BatchWriteItemResponse.builder()
            .unprocessedItems(unprocessed.isEmpty() ? Map.of() : Map.of("insights", unprocessed)).build();
    }

    @Override
    public PutItemResponse putItem(PutItemRequest request) {
        singleCalls.add("put " + request.item().get("customer_id").s() + "/" + request.item().get("rule_id").s());
        if (isInvalid(request.item())) {
            throw error(400, "ValidationException");
        }
        table.put(key(request.item()), request.item());
        return PutItemResponse.builder().build();
    }

    @Override
    public DeleteItemResponse deleteItem(DeleteItemRequest request) {
        singleCalls.add("delete " + request.key().get("customer_id").s() + "/" + request.key().get("rule_id").s());
        table.remove(key(request.key()));
        return DeleteItemResponse.builder().build();
    }

    private void apply(WriteRequest r) {
        if (r.putRequest() != null) {
            table.put(key(r.putRequest().item()), r.putRequest().item());
        } else {
            table.remove(key(r.deleteRequest().key()));
        }
    }

    private static boolean isInvalid(Map<String, AttributeValue> item) {
        AttributeValue score = item.get("score");
        return score != null && "invalid".equals(score.s());
    }

    static List<String> key(Map<String, AttributeValue> attrs) {
        return List.of(attrs.get("customer_id").s(), attrs.get("rule_id").s());
    }

    String score(String customer, String rule) {
        Map<String, AttributeValue> item = table.get(List.of(customer, rule));
        return item == null ? null : item.get("score").n() != null ? item.get("score").n() : item.get("score").s();
    }

    @Override
    public String serviceName() {
        return "dynamodb";
    }

    @Override
    public void close() {
    }
}
