CREATE TABLE "oracle_conflicts" (
	"id" serial PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"epoch" integer NOT NULL,
	"signer" text NOT NULL,
	"key" text NOT NULL,
	"existing_digest" text NOT NULL,
	"rejected_digest" text NOT NULL,
	"rejected_signature" text NOT NULL,
	"at" timestamp with time zone NOT NULL,
	CONSTRAINT "oracle_conflicts_kind_check" CHECK ("oracle_conflicts"."kind" in ('receipt', 'metrics'))
);
--> statement-breakpoint
CREATE TABLE "oracle_epochs" (
	"epoch" integer PRIMARY KEY NOT NULL,
	"status" text NOT NULL,
	"budget" numeric(78, 0) NOT NULL,
	"total_contribution" numeric(78, 0) NOT NULL,
	"total_rewards" numeric(78, 0) NOT NULL,
	"dust" numeric(78, 0) NOT NULL,
	"root" text NOT NULL,
	"tx_hash" text,
	"flagged" jsonb NOT NULL,
	"closed_at" timestamp with time zone NOT NULL,
	"reported_at" timestamp with time zone,
	CONSTRAINT "oracle_epochs_status_check" CHECK ("oracle_epochs"."status" in ('submitting', 'reported'))
);
--> statement-breakpoint
CREATE TABLE "oracle_metrics" (
	"server" text NOT NULL,
	"period_start" bigint NOT NULL,
	"period_end" bigint NOT NULL,
	"peer_id" text NOT NULL,
	"tokens_served" numeric(78, 0) NOT NULL,
	"sessions" bigint NOT NULL,
	"mean_step_latency_us" numeric(78, 0) NOT NULL,
	"uptime_seconds" numeric(78, 0) NOT NULL,
	"epoch" integer NOT NULL,
	"digest" text NOT NULL,
	"signature" text NOT NULL,
	"accepted_at" timestamp with time zone NOT NULL,
	CONSTRAINT "oracle_metrics_server_period_start_period_end_pk" PRIMARY KEY("server","period_start","period_end"),
	CONSTRAINT "oracle_metrics_period_check" CHECK ("oracle_metrics"."period_end" > "oracle_metrics"."period_start")
);
--> statement-breakpoint
CREATE TABLE "oracle_receipts" (
	"payer" text NOT NULL,
	"session_id" text NOT NULL,
	"server" text NOT NULL,
	"block_start" integer NOT NULL,
	"block_end" integer NOT NULL,
	"model_id" text NOT NULL,
	"prompt_tokens" numeric(78, 0) NOT NULL,
	"generated_tokens" numeric(78, 0) NOT NULL,
	"replayed_tokens" numeric(78, 0) NOT NULL,
	"issued_at" bigint NOT NULL,
	"epoch" integer NOT NULL,
	"digest" text NOT NULL,
	"signature" text NOT NULL,
	"accepted_at" timestamp with time zone NOT NULL,
	CONSTRAINT "oracle_receipts_payer_session_id_server_block_start_block_end_pk" PRIMARY KEY("payer","session_id","server","block_start","block_end"),
	CONSTRAINT "oracle_receipts_blocks_check" CHECK ("oracle_receipts"."block_start" >= 0 and "oracle_receipts"."block_end" > "oracle_receipts"."block_start")
);
--> statement-breakpoint
CREATE TABLE "oracle_rewards" (
	"epoch" integer NOT NULL,
	"address" text NOT NULL,
	"receipts" integer NOT NULL,
	"block_tokens" numeric(78, 0) NOT NULL,
	"uptime_weight_ppm" numeric(78, 0) NOT NULL,
	"contribution" numeric(78, 0) NOT NULL,
	"amount" numeric(78, 0) NOT NULL,
	"proof" jsonb NOT NULL,
	CONSTRAINT "oracle_rewards_epoch_address_pk" PRIMARY KEY("epoch","address")
);
--> statement-breakpoint
ALTER TABLE "oracle_rewards" ADD CONSTRAINT "oracle_rewards_epoch_oracle_epochs_epoch_fk" FOREIGN KEY ("epoch") REFERENCES "public"."oracle_epochs"("epoch") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "oracle_conflicts_epoch_idx" ON "oracle_conflicts" USING btree ("epoch");--> statement-breakpoint
CREATE INDEX "oracle_metrics_epoch_idx" ON "oracle_metrics" USING btree ("epoch");--> statement-breakpoint
CREATE INDEX "oracle_receipts_epoch_server_idx" ON "oracle_receipts" USING btree ("epoch","server");--> statement-breakpoint
CREATE INDEX "oracle_rewards_address_idx" ON "oracle_rewards" USING btree ("address");