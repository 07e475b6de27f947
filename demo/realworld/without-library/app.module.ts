import { type DynamicModule, Module } from '@nestjs/common';
import { TypeOrmModule, type TypeOrmModuleOptions } from '@nestjs/typeorm';
import { ArticleController } from './article.controller.js';
import { ArticleEntity } from './article.entity.js';
import { ArticleService } from './article.service.js';
import { UserController } from './user.controller.js';
import { UserEntity } from './user.entity.js';
import { UserService } from './user.service.js';

/** Where the app keeps its data: TypeORM's connection options. */
export type DatabaseOptions = TypeOrmModuleOptions;

@Module({
  imports: [TypeOrmModule.forFeature([ArticleEntity, UserEntity])],
  controllers: [ArticleController, UserController],
  providers: [ArticleService, UserService],
})
class RealworldModule {}

/** The application's root module on the given database. */
export function appModule(database: DatabaseOptions): DynamicModule {
  return {
    module: class AppModule {},
    imports: [
      TypeOrmModule.forRoot({ ...database, entities: [ArticleEntity, UserEntity] } as TypeOrmModuleOptions),
      RealworldModule,
    ],
  };
}
